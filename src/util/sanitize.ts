/**
 * Text from the guest made safe to print on a terminal or in a CI log: no control characters, no
 * escape sequences (colors, cursor moves, window titles, hyperlinks, device controls), no bidi
 * overrides, and nothing GitHub Actions would run as a workflow command. Pure.
 */
export interface SanitizeOptions {
  /** Keep line breaks (as \n); otherwise every line break becomes a space. */
  multiline?: boolean;
}

// ESC or a C1 introducer, then: CSI (params, intermediates, final); OSC, DCS, SOS, PM, APC (a string up
// to BEL or ST, or to the end when never terminated); or a plain escape (intermediates, final)
const ESCAPES = new RegExp(
  [String.raw`(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?`, String.raw`(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[\s\S]*?(?:\x07|\x1b\\|\x9c|$)`, String.raw`\x1b[\x20-\x2f]*[\x30-\x7e]?`].join(
    '|',
  ),
  'g',
);
/** Breaks a reader sees as a new line: CR (which would let a line overwrite itself), LS, PS, NEL. */
const LINE_BREAKS = /\r\n|[\r\u2028\u2029\x85]/g;
/** C0 but tab and LF, DEL, C1. */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
/** Bidi embeddings, overrides and isolates, and the marks: they reorder what a reader sees. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** A workflow command: `::` opening a line after optional whitespace (the runner trims any). */
const WORKFLOW_COMMAND = /^([^\S\n]*):(?=:)/gm;

export function sanitize(text: string, options: SanitizeOptions = {}): string {
  let out = String(text).replace(ESCAPES, '').replace(LINE_BREAKS, '\n').replace(CONTROLS, '').replace(BIDI, '');
  if (!options.multiline) out = out.replace(/\n/g, ' ');
  // `: :` and `# #[` read the same to a person and are no command to the runner
  return out.replace(WORKFLOW_COMMAND, '$1: ').replace(/##\[/g, '# #[');
}

/** One line: sanitized, whitespace runs collapsed, cut to max characters. */
export function sanitizeLine(text: string, max = 300): string {
  const line = sanitize(text).replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
