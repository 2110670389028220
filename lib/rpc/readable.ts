/**
 * Reading grpc-js object-mode streams as AsyncIterables.
 */
import type { Readable } from "node:stream";

const HIGH_WATER = 16;

/**
 * The messages of a grpc-js readable call (client or server side), then its error if it failed.
 *
 * Not Node's `for await (... of readable)`: under Deno 2.9.6 that iterator (paused mode) never saw the
 * end of a grpc-js server-side request stream, so a bidi handler would wait forever after the client
 * half-closes; and on the client it drops messages still buffered when an error arrives. This one
 * uses flowing mode ('data' events) and pauses the call while HIGH_WATER messages wait.
 */
export async function* readAll(call: Readable): AsyncGenerator<unknown> {
  const queue: unknown[] = [];
  let failure: unknown;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  call.on("data", (message: unknown) => {
    queue.push(message);
    if (queue.length >= HIGH_WATER) call.pause();
    notify();
  });
  call.on("error", (error: unknown) => {
    failure ??= error;
    ended = true;
    notify();
  });
  // 'close' without 'end': the stream was destroyed (a cancelled call); stop waiting.
  const finish = () => {
    ended = true;
    notify();
  };
  call.on("end", finish);
  call.on("close", finish);
  while (true) {
    if (queue.length > 0) {
      const message = queue.shift();
      if (queue.length < HIGH_WATER / 2 && call.isPaused()) call.resume();
      yield message;
      continue;
    }
    if (ended) break;
    await new Promise<void>((resolve) => (wake = resolve));
  }
  if (failure !== undefined) throw failure;
}
