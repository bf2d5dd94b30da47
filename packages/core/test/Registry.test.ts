import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Registry } from "@loupe/core"
import type { Backbone } from "@loupe/core"

const plugin = (id: string, tags: string[]): Backbone.BackbonePlugin => ({
  info: {
    id,
    runtime: "test",
    description: "test",
    embeddingSize: 2,
    preprocess: { size: 8, resize: "squash", layout: "NCHW", scale: 255, mean: [0, 0, 0], std: [1, 1, 1] },
    tags,
    license: "MIT",
    weights: { _tag: "Path", path: "/dev/null" }
  },
  load: () => Effect.die("not loaded in this test")
})

describe("Registry", () => {
  it.effect("finds plugins by id and by tags", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.make({ backbones: [plugin("a:one", ["fast"]), plugin("a:two", ["fast", "clip"])] })
      expect((yield* registry.backbone("a:two")).info.id).toBe("a:two")
      expect(registry.backbonesWithTags(["fast"]).map((p) => p.info.id)).toEqual(["a:one", "a:two"])
      expect(registry.backbonesWithTags(["clip"]).map((p) => p.info.id)).toEqual(["a:two"])
    }))

  it.effect("resolves ids the list does not hold once each, and refuses a plugin under another id", () =>
    Effect.gen(function*() {
      const asked: Array<string> = []
      const registry = yield* Registry.make({
        backbones: [plugin("a:one", [])],
        resolveBackbone: (id) => {
          asked.push(id)
          return id.startsWith("hf:") ? plugin(id, ["hub"]) : id === "odd:x" ? plugin("odd:y", []) : undefined
        }
      })
      const first = yield* registry.backbone("hf:org/model@v1")
      expect(first.info.id).toBe("hf:org/model@v1")
      expect(yield* registry.backbone("hf:org/model@v1")).toBe(first)
      expect((yield* registry.backbone("a:one")).info.id).toBe("a:one")
      expect(yield* Effect.flip(registry.backbone("nope:x"))).toMatchObject({ reason: "UnknownPlugin", field: "nope:x" })
      expect(yield* Effect.flip(registry.backbone("odd:x"))).toMatchObject({ reason: "InvalidConfig", field: "odd:x" })
      expect(asked).toEqual(["hf:org/model@v1", "nope:x", "odd:x"])
      // Resolved plugins join no tag selection: presets choose among registered ones.
      expect(registry.backbonesWithTags(["hub"])).toEqual([])
    }))

  it.effect("rejects a duplicate id and names it", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Registry.make({ backbones: [plugin("a:one", []), plugin("a:one", [])] }))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(Registry.make({ backbones: [plugin("a:one", []), plugin("a:one", [])] }))
      expect(error.reason).toBe("DuplicatePlugin")
      expect(error.message).toContain("a:one")
    }))

  it.effect("rejects a backbone id with \"+\", which names concatenations", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Registry.make({ backbones: [plugin("a:one", []), plugin("a:x+y", [])] }))
      expect(error.reason).toBe("InvalidConfig")
      expect(error.field).toBe("a:x+y")
    }))

  it.effect("an unknown id lists the registered ones", () =>
    Effect.gen(function*() {
      const registry = yield* Registry.make({ backbones: [plugin("a:one", [])] })
      const error = yield* Effect.flip(registry.backbone("b:none"))
      expect(error.reason).toBe("UnknownPlugin")
      expect(error.message).toContain("a:one")
    }))
})
