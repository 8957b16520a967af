// The lengths a parsed case's strings are cut to, applied as each string is made (never after).

/** A case name, a joined suite path or a file name: this many characters at most. */
export const MAX_NAME_CHARS = 2000;
/** A case's message. */
export const MAX_MESSAGE_CHARS = 4000;
/** A case's details (stack, diff). */
export const MAX_DETAILS_CHARS = 4000;

/** The text cut to `max` characters, `mark` added where it was cut. Pure. */
export function clip(text: string, max: number, mark = '…'): string {
  return text.length > max ? `${text.slice(0, max)}${mark}` : text;
}

/**
 * One string object per distinct value, cut to `max`: the cases of one file share their suite
 * (and classname) strings instead of holding a copy each.
 */
export class Interner {
  readonly #seen = new Map<string, string>();
  constructor(private readonly max = MAX_NAME_CHARS) {}

  get(text: string): string {
    let shared = this.#seen.get(text);
    if (shared === undefined) {
      shared = clip(text, this.max);
      this.#seen.set(text, shared);
    }
    return shared;
  }
}

/**
 * The suite path one level down: `outer > name`, clipped. Made once per suite, never per case;
 * `outer` is clipped already, so it stays bounded however deep the nesting goes. Pure.
 */
export function joinSuite(outer: string, name: string | undefined): string {
  if (!name) return outer;
  return clip(outer ? `${outer} > ${clip(name, MAX_NAME_CHARS)}` : name, MAX_NAME_CHARS);
}
