import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { kvmtestError } from '../errors.js';
import { clip, Interner, joinSuite, MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS } from './limits.js';
import type { CaseStatus, TestCase } from './types.js';

/** One element as fast-xml-parser gives it with preserveOrder: { tag: children, ':@': attributes }. */
type XmlNode = Record<string, unknown> & { ':@'?: Record<string, string> };

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

/** What the cases of one file share: its (already clipped) name, the classnames seen, the cases so far. */
interface Walk {
  file: string;
  classnames: Interner;
  out: TestCase[];
}

/**
 * JUnit XML (a <testsuites> or a single <testsuite> root) → one TestCase per <testcase>. Each
 * suite's joined path is built once, clipped, and shared by its cases; names and messages are
 * clipped as each case is made.
 */
export function parseJUnit(text: string, file: string): TestCase[] {
  const xml = text.replace(/^\uFEFF/, '');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    const { msg, line, col } = valid.err;
    throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as JUnit XML: ${msg} (line ${line}${col === undefined ? '' : `, column ${col}`})`);
  }
  let nodes: XmlNode[];
  try {
    nodes = parser.parse(xml) as XmlNode[];
  } catch (cause) {
    // the parser's own limits (nesting depth) throw plain errors
    throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as JUnit XML: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  const root = nodes.find((node) => ['testsuites', 'testsuite'].includes(tagOf(node) ?? ''));
  if (!root) throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as JUnit XML: the root element is not <testsuites> or <testsuite>`);
  const walked: Walk = { file, classnames: new Interner(), out: [] };
  walk([root], '', walked);
  return walked.out;
}

/** `suite`: the enclosing named suites joined with ' > ' and clipped ('' at the top). */
function walk(nodes: XmlNode[], suite: string, walked: Walk): void {
  for (const node of nodes) {
    const tag = tagOf(node);
    if (tag === 'testsuites') walk(childrenOf(node), suite, walked);
    else if (tag === 'testsuite') {
      walk(childrenOf(node), joinSuite(suite, attr(node, 'name')?.trim()), walked);
    } else if (tag === 'testcase') walked.out.push(toCase(node, suite, walked));
  }
}

function toCase(node: XmlNode, enclosing: string, { file, classnames }: Walk): TestCase {
  const classname = classnames.get(attr(node, 'classname')?.trim() ?? '');
  let suite = enclosing;
  // pytest names its one suite "pytest"; the classname (module or module.Class) says more
  if ((suite === '' || suite === 'pytest') && classname) suite = classname;
  // node --test puts top-level tests straight under <testsuites> with a fixed classname="test"
  if (enclosing === '' && classname === 'test') suite = '';

  const testCase: TestCase = { name: clip(attr(node, 'name') ?? '', MAX_NAME_CHARS), suite, status: 'passed', file };
  const seconds = Number(attr(node, 'time')?.replace(/,/g, '') ?? NaN);
  if (Number.isFinite(seconds)) testCase.durationMs = Math.round(seconds * 1000);

  const children = childrenOf(node);
  const outcome = children.find((child) => ['failure', 'error'].includes(tagOf(child) ?? '')) ?? children.find((child) => tagOf(child) === 'skipped');
  if (outcome) {
    testCase.status = FAILED[tagOf(outcome)!] ?? 'skipped';
    const body = textOf(outcome).trim();
    const message = attr(outcome, 'message')?.trim() || body.split('\n', 1)[0]!.trim();
    if (message) testCase.message = clip(message, MAX_MESSAGE_CHARS);
    if (body) testCase.details = clip(body, MAX_DETAILS_CHARS, '\n…');
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
