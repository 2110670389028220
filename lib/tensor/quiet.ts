/**
 * Silences tfjs's console output the supported way: tfjs-core's log.warn/log.log print only while
 * neither the PROD nor the IS_TEST flag is set, and `enableProdMode()` sets PROD. That is where the
 * cpu backend's "Hi, looks like you are running TensorFlow.js in Node.js" banner goes through. PROD
 * changes nothing else in tfjs 4.22 (only log.ts and environment.ts read it), so numerics and
 * debug-mode checks are untouched. Imported first by lib/tensor/backend.ts and preloaded by
 * `deno task test`, so every command and test process is quiet before any tensor exists.
 */
import * as tf from "@tensorflow/tfjs-core";

tf.enableProdMode();
