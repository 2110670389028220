/**
 * Channel and server options of the supervised transport, chosen so that neither of our two
 * processes sends the GOAWAY that Deno's node:http2 can crash on (denoland/deno#36788):
 * - the relay's channel to the service process is opened once and never goes idle (grpc-js closes
 *   an idle channel's connection after 30 minutes by default, which sends GOAWAY);
 * - neither server ages or idles connections out (grpc-js' max_connection_age / _idle are off by
 *   default; set here explicitly so a default change upstream cannot switch them on).
 */
import { DEFAULT_FLOW_CONTROL_WINDOW } from "../server.ts";

/** One method the relay forwards. */
export interface RelayMethod {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

/** grpc-js' upper bound for timer-based options (setTimeout's limit). */
const NEVER_MS = 2 ** 31 - 1;

export function upstreamChannelOptions(maxMessageBytes: number): Record<string, number> {
  return {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc-node.flow_control_window": DEFAULT_FLOW_CONTROL_WINDOW,
    "grpc.client_idle_timeout_ms": NEVER_MS,
    // Retries are the caller's business: the relay must not resend a TrainStep on its own.
    "grpc.enable_retries": 0,
  };
}

export function relayOptions(maxMessageBytes: number): Record<string, number> {
  return {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.max_connection_age_ms": NEVER_MS,
    "grpc.max_connection_idle_ms": NEVER_MS,
  };
}
