/**
 * The `tokenizer/` folder of a diffusers SD1.5 pipeline, written from the CLIP BPE vocabulary file
 * (`bpe_simple_vocab_16e6.txt.gz`): what transformers' `CLIPTokenizer.from_pretrained` reads --
 * `vocab.json` (symbol -> id), `merges.txt` (`#version: 0.2` then one merge per line, rank order),
 * `tokenizer_config.json` and `special_tokens_map.json`. Every symbol and merge comes from the file;
 * only transformers' names of the two special tokens differ from the reference tokenizer's.
 */
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { clipMerges, clipVocabulary, EOT_TOKEN, SOT_TOKEN } from "../../../../lib/text/clip_bpe.ts";

/** transformers' spelling of SOT / EOT in CLIPTokenizer's vocab.json and config. */
export const HF_BOS = "<|startoftext|>";
export const HF_EOS = "<|endoftext|>";

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Reads a gzip-compressed or plain BPE vocabulary file as text. */
export async function readBpeText(path: string): Promise<string> {
  const raw = await Deno.readFile(path);
  const isGzip = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
  return new TextDecoder("utf-8", { fatal: true }).decode(isGzip ? gunzipSync(raw) : raw);
}

/** Writes `dir/{vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json}`. */
export async function writeClipTokenizerFolder(
  vocabFile: string,
  dir: string,
  maxLength: number,
): Promise<string[]> {
  const merges = clipMerges(await readBpeText(vocabFile));
  const rename = (t: string) => (t === SOT_TOKEN ? HF_BOS : t === EOT_TOKEN ? HF_EOS : t);
  const vocab: Record<string, number> = {};
  clipVocabulary(merges).forEach((t, id) => (vocab[rename(t)] = id));
  await Deno.mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ["vocab.json", JSON.stringify(vocab) + "\n"],
    ["merges.txt", ["#version: 0.2", ...merges.map(([a, b]) => `${a} ${b}`)].join("\n") + "\n"],
    [
      "tokenizer_config.json",
      JSON.stringify(
        {
          tokenizer_class: "CLIPTokenizer",
          model_max_length: maxLength,
          do_lower_case: true,
          bos_token: HF_BOS,
          eos_token: HF_EOS,
          unk_token: HF_EOS,
          pad_token: HF_EOS,
          errors: "replace",
          add_prefix_space: false,
        },
        null,
        2,
      ) + "\n",
    ],
    [
      "special_tokens_map.json",
      JSON.stringify(
        { bos_token: HF_BOS, eos_token: HF_EOS, unk_token: HF_EOS, pad_token: HF_EOS },
        null,
        2,
      ) +
      "\n",
    ],
  ];
  for (const [name, text] of files) await writeAtomic(join(dir, name), text);
  return files.map(([name]) => join(dir, name));
}
