/**
 * Regenerates the protobuf-es code: `buf lint`, then `buf generate` (buf.yaml and buf.gen.yaml at
 * the repository root; protoc-gen-es writes gen/).
 *
 *   deno task gen                      # lint + generate into gen/
 *   deno run -A tools/gen.ts --out DIR # generate into DIR instead (used by test/gen_stale_test.ts)
 *   deno run -A tools/gen.ts --no-lint
 */
import { parse as parseYaml } from "yaml";
import { existsSync, readdirSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Path of the buf binary that the npm package @bufbuild/buf installed for this platform
 * (node_modules/.deno/@bufbuild+buf-<os>-<arch>@<version>/.../bin/buf), or `$BUF` if set.
 */
export function findBuf(root = repoRoot): string {
  const fromEnv = Deno.env.get("BUF");
  if (fromEnv) return fromEnv;
  const os = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  const pkg = `buf-${os}-${arch}`;
  const exe = Deno.build.os === "windows" ? "buf.exe" : "buf";
  const candidates = [join(root, "node_modules", "@bufbuild", pkg, "bin", exe)];
  const denoDir = join(root, "node_modules", ".deno");
  if (existsSync(denoDir)) {
    for (
      const entry of readdirSync(denoDir).filter((e) => e.startsWith(`@bufbuild+${pkg}@`)).sort().reverse()
    ) {
      candidates.push(join(denoDir, entry, "node_modules", "@bufbuild", pkg, "bin", exe));
    }
  }
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `buf binary not found (looked for ${
        candidates.join(", ")
      }); run \`deno install\` or set BUF=/path/to/buf`,
    );
  }
  return found;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text}`);
  }
}

export interface GenerateOptions {
  /** Folder that receives the generated tree (default <repo>/gen). */
  outDir?: string;
  /** Run `buf lint` first (default true). */
  lint?: boolean;
  root?: string;
}

/**
 * Lints and generates. With `outDir`, buf.gen.yaml is passed to buf with every plugin's `out`
 * replaced by `outDir`, so the committed gen/ is left alone.
 */
export async function generate(options: GenerateOptions = {}): Promise<string> {
  const root = options.root ?? repoRoot;
  const buf = findBuf(root);
  if (options.lint ?? true) await run(buf, ["lint"], root);
  const template = parseYaml(await Deno.readTextFile(join(root, "buf.gen.yaml"))) as {
    plugins: { out: string }[];
  };
  const outDir = options.outDir
    ? (isAbsolute(options.outDir) ? options.outDir : resolve(Deno.cwd(), options.outDir))
    : join(root, template.plugins[0].out);
  for (const plugin of template.plugins) plugin.out = outDir;
  await run(buf, ["generate", "--template", JSON.stringify(template)], root);
  return outDir;
}

async function listFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (d: string) => {
    for await (const entry of Deno.readDir(d)) {
      const path = join(d, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) files.set(relative(dir, path), await Deno.readTextFile(path));
    }
  };
  await walk(dir);
  return files;
}

/**
 * Differences between a freshly generated tree and the committed one, one line per file, sorted:
 * "differs: PATH", "missing (generated, not committed): PATH", "stale (committed, not generated): PATH".
 */
export async function diffTrees(generatedDir: string, committedDir: string): Promise<string[]> {
  const fresh = await listFiles(generatedDir);
  const committed = await listFiles(committedDir);
  const problems: string[] = [];
  for (const [path, text] of [...fresh].sort(([a], [b]) => a.localeCompare(b))) {
    if (!committed.has(path)) problems.push(`missing (generated, not committed): ${path}`);
    else if (committed.get(path) !== text) problems.push(`differs: ${path}`);
  }
  for (const path of [...committed.keys()].sort()) {
    if (!fresh.has(path)) problems.push(`stale (committed, not generated): ${path}`);
  }
  return problems;
}

export const GEN_FLAGS = {
  out: { type: "string", description: "output folder (default gen/)" },
  lint: { type: "bool", default: true, description: "run buf lint first (--no-lint skips it)" },
} as const satisfies FlagSpecs;

export const GEN_COMMAND: CommandSpec<typeof GEN_FLAGS> = {
  name: "gen",
  summary: "buf lint + buf generate: regenerates gen/ from proto/ with protoc-gen-es",
  flags: GEN_FLAGS,
  examples: ["deno task gen", "deno task gen --out /tmp/gen --no-lint"],
  async run(values) {
    const dir = await generate({ outDir: values.out, lint: values.lint });
    console.log(`generated ${dir}`);
  },
};

if (import.meta.main) await runCommand(GEN_COMMAND);
