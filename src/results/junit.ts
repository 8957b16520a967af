import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { kvmtestError } from '../errors.js';
import type { CaseStatus, TestCase } from './types.js';

/** One element as fast-xml-parser gives it with preserveOrder: { tag: children, ':@': attributes }. */
type XmlNode = Record<string, unknown> & { ':@'?: Record<string, string> };

const MAX_DETAILS = 4000;
const FAILED: Record<string, CaseStatus> = { failure: 'failed', error: 'error' };

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  // numeric references (&#10; in pytest's multi-line messages) decode only with this on
  htmlEntities: true,
});

/** JUnit XML (a <testsuites> or a single <testsuite> root) → one TestCase per <testcase>. */
export function parseJUnit(text: string, file: string): TestCase[] {
  const xml = text.replace(/^\uFEFF/, '');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as JUnit XML: ${msg} (line ${line}${col === undefined ? '' : `, column ${col}`})`);
  }
  const root = (parser.parse(xml) as XmlNode[]).find((node) => ['testsuites', 'testsuite'].includes(tagOf(node) ?? ''));
  if (!root) throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as JUnit XML: the root element is not <testsuites> or <testsuite>`);
  const cases: TestCase[] = [];
  walk([root], [], file, cases);
  return cases;
}

function walk(nodes: XmlNode[], suites: string[], file: string, out: TestCase[]): void {
  for (const node of nodes) {
    const tag = tagOf(node);
    if (tag === 'testsuites') walk(childrenOf(node), suites, file, out);
    else if (tag === 'testsuite') {
      const name = attr(node, 'name')?.trim();
      walk(childrenOf(node), name ? [...suites, name] : suites, file, out);
    } else if (tag === 'testcase') out.push(toCase(node, suites, file));
  }
}

function toCase(node: XmlNode, suites: string[], file: string): TestCase {
  const classname = attr(node, 'classname')?.trim() ?? '';
  let suite = suites.join(' > ');
  // pytest names its one suite "pytest"; the classname (module or module.Class) says more
  if ((suite === '' || suite === 'pytest') && classname) suite = classname;
  // node --test puts top-level tests straight under <testsuites> with a fixed classname="test"
  if (suites.length === 0 && classname === 'test') suite = '';

  const testCase: TestCase = { name: attr(node, 'name') ?? '', suite, status: 'passed', file };
  const seconds = Number(attr(node, 'time')?.replace(/,/g, '') ?? NaN);
  if (Number.isFinite(seconds)) testCase.durationMs = Math.round(seconds * 1000);

  const children = childrenOf(node);
  const outcome = children.find((child) => ['failure', 'error'].includes(tagOf(child) ?? '')) ?? children.find((child) => tagOf(child) === 'skipped');
  if (outcome) {
    testCase.status = FAILED[tagOf(outcome)!] ?? 'skipped';
    const body = textOf(outcome).trim();
    const message = attr(outcome, 'message')?.trim() || body.split('\n', 1)[0]!.trim();
    if (message) testCase.message = message;
    if (body) testCase.details = body.length > MAX_DETAILS ? `${body.slice(0, MAX_DETAILS)}\n…` : body;
  }
  return testCase;
}

function tagOf(node: XmlNode): string | undefined {
  return Object.keys(node).find((key) => key !== ':@');
}

function childrenOf(node: XmlNode): XmlNode[] {
  const children = node[tagOf(node) ?? ''];
  return Array.isArray(children) ? (children as XmlNode[]) : [];
}

function attr(node: XmlNode, name: string): string | undefined {
  const value = node[':@']?.[name];
  // node --test escapes " as &quot; and then escapes that & again, so one decode leaves &quot;
  return value === undefined ? undefined : String(value).replace(/&quot;/g, '"');
}

/** The element's text and CDATA, children's included. */
function textOf(node: XmlNode): string {
  return childrenOf(node)
    .map((child) => (typeof child['#text'] === 'string' ? child['#text'] : textOf(child)))
    .join('');
}
