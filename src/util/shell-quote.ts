/**
 * A string as one POSIX shell word: as it is when it is plainly safe, else single-quoted. Plainly
 * safe: only characters no shell treats specially, and not starting with `-` (read as an option by
 * whoever reads the command) or `=` (zsh expands `=cmd`). Pure.
 */
export function shellQuote(text: string): string {
  return /^[\w./:,@%+][\w./=:,@%+-]*$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * A path as one shell word that no command takes for an option: a relative path starting with `-`
 * gets `./` in front (quoting alone does not help: the shell removes the quotes), then shellQuote. Pure.
 */
export function shellPath(path: string): string {
  return shellQuote(path.startsWith('-') ? `./${path}` : path);
}
