import { assertEquals, assertThrows } from "../../lib/testing/assert.ts";
import { parseAttributes } from "./bundle_attributes.ts";

const count = { name: "count", classes: ["one", "none"], patterns: ["^a\\b", "(?!)"] };
const color = (presence?: unknown) => ({
  name: "color",
  classes: ["red", "blue"],
  patterns: ["\\bred\\b", "\\bblue\\b"],
  ...(presence === undefined ? {} : { presence }),
});

Deno.test("parseAttributes: a presence condition is kept; heads without one have none", () => {
  const got = parseAttributes([count, color({ head: "count", absent: "none" })]);
  assertEquals(got[0], count);
  assertEquals(got[1].presence, { head: "count", absent: "none" });
});

Deno.test("parseAttributes: a bad presence condition names its field", () => {
  const cases: [unknown[], string][] = [
    [[count, color("count")], "attributes[1].presence"],
    [[count, color({ head: "count" })], "attributes[1].presence.absent"],
    [[count, color({ head: "size", absent: "none" })], "attributes[1].presence.head"],
    [[count, color({ head: "color", absent: "red" })], "attributes[1].presence.head"],
    [[count, color({ head: "count", absent: "zero" })], "attributes[1].presence.absent"],
    [
      [{ ...count, presence: { head: "color", absent: "red" } }, color({ head: "count", absent: "none" })],
      "attributes[0].presence.head",
    ],
    [[count, { ...color(), patterns: ["(", "x"] }], "attributes[1].patterns[0]"],
  ];
  for (const [raw, field] of cases) {
    assertThrows(() => parseAttributes(raw), Error, field);
  }
});
