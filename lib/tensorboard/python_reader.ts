/**
 * Test support: reads an event file with TensorBoard's own Python reader
 * (tensorboard.backend.event_processing.event_accumulator), where that package is installed, so the
 * tests check our files against the reference implementation and not only against our decoder.
 */

/** Whether `python3 -c "import tensorboard..."` works here (tests skip otherwise). */
export async function pythonHasTensorboard(): Promise<boolean> {
  try {
    const r = await new Deno.Command("python3", {
      args: ["-c", "import tensorboard.backend.event_processing.event_accumulator"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success;
  } catch {
    return false; // no python3 at all
  }
}

const SCRIPT = `
import json, sys
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0})
acc.Reload()
tags = acc.Tags()
print(json.dumps({
  "scalars": {t: [[s.step, s.value] for s in acc.Scalars(t)] for t in tags["scalars"]},
  "images": {t: [[i.step, i.width, i.height, len(i.encoded_image_string)] for i in acc.Images(t)]
             for t in tags["images"]},
}))
`;

export interface PythonRead {
  /** tag -> [step, value] */
  scalars: Record<string, [number, number][]>;
  /** tag -> [step, width, height, encoded bytes] */
  images: Record<string, [number, number, number, number][]>;
}

/** Every scalar and image of `path` (an event file, or a folder of them) as event_accumulator sees them. */
export async function readWithPython(path: string): Promise<PythonRead> {
  const r = await new Deno.Command("python3", {
    args: ["-c", SCRIPT, path],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`event_accumulator failed: ${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}
