/**
 * The generic gRPC adapter (ARCHITECTURE.md, lib/rpc): serve and call any protobuf-es v2 service.
 *
 *   const server = createServer({ maxReceiveMessageBytes });        // health + reflection included
 *   server.addService(RewardService, impl);                         // impl: ImplOf<typeof RewardService>
 *   const reward = createClient(RewardService, "127.0.0.1:50052");  // reward.score(req, { timeoutMs })
 */
export {
  addService,
  type BoundAddress,
  createServer,
  DEFAULT_FLOW_CONTROL_WINDOW,
  DEFAULT_MAX_MESSAGE_BYTES,
  RpcServer,
  type ServerOptions,
  type ShutdownResult,
} from "./server.ts";
export {
  type CallOptions,
  type Client,
  type ClientCallInfo,
  type ClientHook,
  type ClientOf,
  type ClientOptions,
  createClient,
  waitForReady,
} from "./client.ts";
export { type CallStatus, Code, codeName, RpcError, statusFromError } from "./status.ts";
export type { CallContext, CallInfo, CallMiddleware, ImplOf, ServiceImpl } from "./types.ts";
export { HealthReporter, ServingStatus } from "./health.ts";
export { FlagError, flagsHelp, type FlagSpec, type FlagSpecs, type FlagValues, parseFlags } from "./flags.ts";
export {
  commonFlags,
  type RunningService,
  runService,
  type ServiceMainOptions,
  startService,
} from "./main.ts";
export { type Access, authMiddleware, authorize, type Role, roleAllows, ROLES, TokenTable } from "./auth.ts";
export { ACCESS, accessOf } from "./access.ts";
export {
  type ClientSecurity,
  type ClientSecurityConfig,
  clientSecurityFromEnv,
  openClientSecurity,
  withSecurity,
} from "./client_security.ts";
export {
  isLoopback,
  openServerSecurity,
  securityFlags,
  type ServerSecurity,
  unprotectedBindProblem,
} from "./security.ts";
export { clientTls, ReloadingCertificateProvider, serverTls, TlsConfigError } from "./tls.ts";
