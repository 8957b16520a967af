/** A string as one POSIX shell word: as it is when it needs no quoting, else single-quoted. Pure. */
export function shellQuote(text: string): string {
  return /^[\w./=:,@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
