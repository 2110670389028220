/**
 * TensorBoard event files: `events.out.tfevents.<seconds>.<host>` holding TFRecord-framed `Event`
 * protobufs (gen/tensorboard, the subset of TensorBoard's event.proto/summary.proto under
 * proto/tensorboard). The first event carries file_version "brain.Event:2"; then one event per
 * scalar or image. Each record is appended with one write, so a crash loses at most the record being
 * written, and the reader (decodeRecords) refuses a torn one rather than misreading it.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { hostname } from "node:os";
import { join } from "node:path";
import { type Event, EventSchema, SessionLog_SessionStatus } from "../../gen/tensorboard/event_pb.ts";
import { decodeRecords, encodeRecord } from "./record.ts";

export const FILE_VERSION = "brain.Event:2";

/** PNG colour type -> TensorBoard colorspace (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA). */
const COLORSPACE: Record<number, number> = { 0: 1, 4: 2, 2: 3, 3: 3, 6: 4 };

/** Width, height and TensorBoard colorspace of a PNG, from its IHDR chunk. */
export function pngInfo(png: Uint8Array): { width: number; height: number; colorspace: number } {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  if (png.length < 26 || view.getUint32(0) !== 0x89504e47 || view.getUint32(12) !== 0x49484452) {
    throw new RangeError("image: not a PNG (no signature and IHDR chunk)");
  }
  return { width: view.getUint32(16), height: view.getUint32(20), colorspace: COLORSPACE[png[25]] ?? 3 };
}

export class EventFileWriter {
  private constructor(readonly path: string, private file: Deno.FsFile) {}

  /** Creates `dir` and a new event file in it (never appends to another run's file). */
  static async open(dir: string, now: Date = new Date()): Promise<EventFileWriter> {
    await Deno.mkdir(dir, { recursive: true });
    const seconds = Math.floor(now.getTime() / 1000);
    const base = `events.out.tfevents.${String(seconds).padStart(10, "0")}.${hostname()}`;
    // A second writer in the same second (a quick resume) gets its own file: .1, .2, ...
    for (let n = 0;; n++) {
      const path = join(dir, n === 0 ? base : `${base}.${n}`);
      try {
        const file = await Deno.open(path, { write: true, createNew: true });
        const writer = new EventFileWriter(path, file);
        await writer.write(create(EventSchema, {
          wallTime: now.getTime() / 1000,
          what: { case: "fileVersion", value: FILE_VERSION },
        }));
        return writer;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists) || n >= 1000) throw e;
      }
    }
  }

  private async write(event: Event): Promise<void> {
    const record = encodeRecord(toBinary(EventSchema, event));
    let written = 0;
    while (written < record.length) written += await this.file.write(record.subarray(written));
  }

  /** Scalars of one step, one event (TensorBoard groups tags by their "/" prefix). */
  async scalars(step: number, values: Record<string, number>, wallTime = Date.now() / 1000): Promise<void> {
    const value = Object.entries(values)
      .filter(([, v]) => Number.isFinite(v))
      .map(([tag, v]) => ({ tag, value: { case: "simpleValue" as const, value: v } }));
    if (value.length === 0) return;
    await this.write(create(EventSchema, {
      wallTime,
      step: BigInt(step),
      what: { case: "summary", value: { value } },
    }));
  }

  /** A PNG image (its size and colour type are read from its IHDR chunk). */
  async image(step: number, tag: string, png: Uint8Array, wallTime = Date.now() / 1000): Promise<void> {
    const image = pngInfo(png);
    await this.write(create(EventSchema, {
      wallTime,
      step: BigInt(step),
      what: {
        case: "summary",
        value: {
          value: [{
            tag,
            value: {
              case: "image",
              value: {
                width: image.width,
                height: image.height,
                colorspace: image.colorspace,
                encodedImageString: png,
              },
            },
          }],
        },
      },
    }));
  }

  /**
   * SessionLog START at `step`: the first step this writer will log. TensorBoard's reader drops every
   * event of an earlier file at `step` or later when it meets it (its "purge orphaned data"), so the
   * steps a resumed run replays after the checkpoint it restarted from appear once, as in metrics.jsonl.
   */
  async sessionStart(step: number, wallTime = Date.now() / 1000): Promise<void> {
    await this.write(create(EventSchema, {
      wallTime,
      step: BigInt(step),
      what: { case: "sessionLog", value: { status: SessionLog_SessionStatus.START } },
    }));
  }

  /** Flushes to disk and closes. */
  async close(): Promise<void> {
    await this.file.sync();
    this.file.close();
  }
}

/** Every event of an event file, in order. */
export async function readEventFile(path: string): Promise<Event[]> {
  return decodeRecords(await Deno.readFile(path)).map((data) => fromBinary(EventSchema, data));
}

/** The event files of a folder, oldest first (names start with their creation second). */
export async function eventFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith("events.out.tfevents.")) names.push(e.name);
  }
  return names.sort().map((n) => join(dir, n));
}

/**
 * The events of a folder's files as TensorBoard shows them: files oldest first, and a SessionLog
 * START at step s drops the events collected so far at step s or later (event_accumulator's purge on
 * restart). The file_version and session events themselves are left out.
 */
export async function visibleEvents(dir: string): Promise<Event[]> {
  let kept: Event[] = [];
  for (const path of await eventFiles(dir)) {
    for (const event of await readEventFile(path)) {
      if (event.what.case === "sessionLog") {
        if (event.what.value.status === SessionLog_SessionStatus.START) {
          kept = kept.filter((e) => e.step < event.step);
        }
      } else if (event.what.case !== "fileVersion") {
        kept.push(event);
      }
    }
  }
  return kept;
}
