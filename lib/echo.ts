/**
 * Error details and log lines never echo more than ECHO_MAX characters of any one client string:
 * `truncateEchoes` cuts every over-long run of non-space characters (a quoted name, a path) and
 * says how long it was, so a 5000-character adapter path costs ~200 characters in a status and in
 * the log, and the message still names the field (lib/rpc/server.ts applies it to every status).
 */

/** Most characters of one client-supplied string an error message repeats. */
export const ECHO_MAX = 200;
/** Longest whole status message sent (a list of many problems is cut too). */
export const DETAILS_MAX = 2000;

/** `s` with every run of more than `max` non-space characters cut to `max`, and capped. */
export function truncateEchoes(s: string, max = ECHO_MAX): string {
  const cut = s.replace(
    new RegExp(`\\S{${max + 1},}`, "g"),
    (run) => `${run.slice(0, max)}…(${run.length} chars)`,
  );
  return cut.length > DETAILS_MAX ? `${cut.slice(0, DETAILS_MAX)}…(${cut.length} chars)` : cut;
}

/** A client string for an error message: JSON-quoted, at most `max` characters of it. */
export function quoteClient(s: string, max = ECHO_MAX): string {
  return s.length > max ? `${JSON.stringify(s.slice(0, max))}…(${s.length} chars)` : JSON.stringify(s);
}
