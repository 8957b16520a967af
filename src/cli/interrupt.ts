/** Ctrl-C and SIGTERM become an AbortSignal for the command's lifetime: `using interrupt = onInterrupt();`. */
export interface Interrupt extends Disposable {
  readonly signal: AbortSignal;
}

/** Listens for SIGINT and SIGTERM until disposed; the first one aborts with reason 'interrupted' (cleanup then runs). */
export function onInterrupt(): Interrupt {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
