/**
 * Entry point of the sd15 table alone (what bench/gpu/run.sh bundles into one file with
 * `deno bundle`, so the GPU machine needs Deno and nothing else): same flags as
 * `deno task bench --only sd15`.
 */
import { parseFlags } from "../../lib/rpc/flags.ts";
import { runSd15Section, SD15_BENCH_FLAGS } from "../../services/policy/model/sd15/bench_section.ts";

await runSd15Section(parseFlags(Deno.args, SD15_BENCH_FLAGS).values);
