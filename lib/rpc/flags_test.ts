import { assertEquals, assertThrows } from "../testing/assert.ts";
import { FlagError, flagName, parseFlags } from "./flags.ts";

const specs = {
  host: { type: "string", env: ["SVC_HOST", "RDPO_HOST"], default: "127.0.0.1" },
  port: { type: "int", env: ["SVC_PORT", "RDPO_PORT"], default: 50051, min: 0, max: 65535 },
  scale: { type: "number" },
  verbose: { type: "bool", env: ["SVC_VERBOSE"] },
  backend: { type: "string", choices: ["wasm", "cpu"], default: "wasm" },
} as const;

const noEnv = () => undefined;
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("flags: defaults, both syntaxes, booleans, positionals", () => {
  assertEquals(parseFlags([], specs, noEnv).values, {
    host: "127.0.0.1",
    port: 50051,
    scale: undefined,
    verbose: false,
    backend: "wasm",
  });
  const parsed = parseFlags(
    ["serve", "--port", "0", "--scale=1.5", "--verbose", "--backend=cpu", "--", "--x"],
    specs,
    noEnv,
  );
  assertEquals(parsed.values, { host: "127.0.0.1", port: 0, scale: 1.5, verbose: true, backend: "cpu" });
  assertEquals(parsed.positionals, ["serve", "--x"]);
  assertEquals(parseFlags(["--no-verbose"], specs, envOf({ SVC_VERBOSE: "1" })).values.verbose, false);
  assertEquals(flagName("maxMessageBytes"), "max-message-bytes");
});

Deno.test("flags: command line over service env over generic env over default", () => {
  const env = envOf({ SVC_PORT: "7000", RDPO_PORT: "8000", RDPO_HOST: "0.0.0.0" });
  assertEquals(parseFlags([], specs, env).values.port, 7000);
  assertEquals(parseFlags([], specs, envOf({ RDPO_PORT: "8000" })).values.port, 8000);
  assertEquals(parseFlags(["--port=9000"], specs, env).values.port, 9000);
  assertEquals(parseFlags([], specs, env).values.host, "0.0.0.0");
});

Deno.test("flags: every bad input is a FlagError naming the flag (table)", () => {
  const table: [string[], Record<string, string>, string][] = [
    [["--port", "abc"], {}, '--port: "abc" is not a number'],
    [["--port", "1.5"], {}, '--port: "1.5" is not an integer'],
    [["--port", "70000"], {}, "--port: 70000 is above the maximum 65535"],
    [["--port=-1"], {}, "--port: -1 is below the minimum 0"],
    [["--port"], {}, "--port: missing value"],
    [["--bogus"], {}, "--bogus: unknown flag"],
    [["--backend", "gpu"], {}, '--backend: "gpu" is not one of wasm, cpu'],
    [["--verbose=maybe"], {}, '--verbose: "maybe" is not a boolean'],
    [[], { SVC_PORT: "x" }, '--port (from env SVC_PORT): "x" is not a number'],
    [["--scale="], {}, '--scale: "" is not a number'],
  ];
  for (const [args, env, message] of table) {
    assertThrows(() => parseFlags(args, specs, envOf(env)), FlagError, message);
  }
  assertThrows(
    () => parseFlags([], { token: { type: "string", env: ["TOKEN"], required: true } }, noEnv),
    FlagError,
    "--token: required or set TOKEN",
  );
});
