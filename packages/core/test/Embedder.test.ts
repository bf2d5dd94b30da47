import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { type Backbone, DiskEmbeddingCache, Embedder, EmbeddingCache, Preprocess } from "@loupe/core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const photos = ["cats", "dogs"].flatMap((label) => {
  const dir = path.join(catsVsDogs, "test", label)
  return fs.readdirSync(dir).sort().slice(0, 4).map((f) => path.join(dir, f))
})
const samples = photos.map((source, i) => ({ id: `photo-${i}`, source }))
const bad = { id: "bad", source: new Uint8Array([0xff, 0xd8, 0xff, 0x00]) }

interface Probe {
  /** The image count of each `embedBatch` call. */
  readonly calls: Array<number>
}

/**
 * A real (if tiny) backbone: per image, the mean and standard deviation of each normalised colour channel of a 32x32
 * squash. `delayMs` stands for inference time spent off the main thread.
 */
const channelStats = (
  probe: Probe,
  options: { readonly weightsHash?: string; readonly delayMs?: number; readonly preprocess?: Preprocess.PreprocessSpec } = {}
): Backbone.LoadedBackbone => {
  const preprocess = options.preprocess ?? Preprocess.imagenet({ size: 32, resize: "squash" })
  const size = preprocess.size
  return {
    info: {
      id: options.preprocess ? "test:channel-stats-cropped" : "test:channel-stats",
      runtime: "test",
      description: "mean and std of each colour channel",
      embeddingSize: 6,
      preprocess,
      tags: ["test"],
      license: "Apache-2.0",
      weights: { _tag: "Path", path: "none" }
    },
    weightsHash: options.weightsHash ?? "weights-1",
    maxBatchSize: 4,
    embedBatch: (batch, count) =>
      Effect.gen(function*() {
        probe.calls.push(count)
        if (options.delayMs !== undefined) yield* Effect.sleep(options.delayMs)
        const out = new Float32Array(count * 6)
        const plane = size * size
        for (let n = 0; n < count; n++) {
          for (let c = 0; c < 3; c++) {
            const values = batch.subarray((n * 3 + c) * plane, (n * 3 + c + 1) * plane)
            const mean = values.reduce((a, b) => a + b, 0) / plane
            out[n * 6 + c] = mean
            out[n * 6 + 3 + c] = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / plane)
          }
        }
        return out
      })
  }
}

/** A backbone that sees left from right: per image, the mean of each normalised channel over the left and right halves. */
const leftRightMeans = (probe: Probe): Backbone.LoadedBackbone => {
  const size = 32
  const stats = channelStats(probe)
  return {
    ...stats,
    info: { ...stats.info, id: "test:left-right-means", description: "mean of each colour channel per half" },
    embedBatch: (batch, count) =>
      Effect.sync(() => {
        probe.calls.push(count)
        const out = new Float32Array(count * 6)
        const plane = size * size
        for (let n = 0; n < count; n++) {
          for (let c = 0; c < 3; c++) {
            const base = (n * 3 + c) * plane
            for (let p = 0; p < plane; p++) out[n * 6 + (p % size < size / 2 ? 0 : 3) + c] += batch[base + p]! / (plane / 2)
          }
        }
        return out
      })
  }
}

const made: Array<string> = []
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "loupe-embedder-"))
  made.push(dir)
  return dir
}
afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))

const rows = (m: { readonly data: Float32Array; readonly cols: number }) =>
  Array.from({ length: m.data.length / m.cols }, (_, i) => Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)))

describe("Embedder", () => {
  it.effect("embeds in input order in batches, and skips a bad image with its reason", () =>
    Effect.gen(function*() {
      const probe: Probe = { calls: [] }
      const backbone = channelStats(probe)
      const withBad = [...samples.slice(0, 3), bad, ...samples.slice(3)]
      const result = yield* Embedder.embedSamples(backbone, withBad, { batchSize: 16, decodeConcurrency: 3 })
      expect(result.samples.map((s) => s.id)).toEqual(samples.map((s) => s.id))
      expect(result.skipped.map((s) => s.sample.id)).toEqual(["bad"])
      expect(result.skipped[0]!.reason).toMatch(/Cannot decode <4 bytes in memory>/)
      // batchSize is capped by the backbone's maxBatchSize (4); each group of 4 inputs holds at most 4 images.
      expect(probe.calls.every((n) => n <= 4)).toBe(true)
      expect(probe.calls.reduce((a, b) => a + b, 0)).toBe(samples.length)
      // Each image alone gives the same vector as inside a batch.
      const alone = yield* Embedder.embedSamples(backbone, samples, { batchSize: 1 })
      expect(rows(result.vectors)).toEqual(rows(alone.vectors))
      // Photos differ from each other.
      expect(new Set(rows(result.vectors).map((r) => r.join())).size).toBe(samples.length)
    }))

  it.effect("a second run over the same images does no inference", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const run = (probe: Probe, input: ReadonlyArray<{ id: string; source: string }>, weightsHash?: string) =>
        Embedder.embedSamples(channelStats(probe, weightsHash === undefined ? {} : { weightsHash }), input).pipe(
          Effect.provide(DiskEmbeddingCache.layer(dir))
        )
      const cold: Probe = { calls: [] }
      const first = yield* run(cold, samples.slice(0, 6))
      expect(cold.calls.reduce((a, b) => a + b, 0)).toBe(6)
      expect(first.cacheHits).toBe(0)

      const warm: Probe = { calls: [] }
      const second = yield* run(warm, samples.slice(0, 6))
      expect(warm.calls).toEqual([])
      expect(second.cacheHits).toBe(6)
      expect(rows(second.vectors)).toEqual(rows(first.vectors))

      // Two new images among cached ones: only they reach the backbone.
      const mixed: Probe = { calls: [] }
      const third = yield* run(mixed, samples)
      expect(mixed.calls.reduce((a, b) => a + b, 0)).toBe(2)
      expect(third.cacheHits).toBe(6)
      expect(rows(third.vectors).slice(0, 6)).toEqual(rows(first.vectors))

      // Other weights are another namespace: nothing is reused.
      const retrained: Probe = { calls: [] }
      yield* run(retrained, samples.slice(0, 6), "weights-2")
      expect(retrained.calls.reduce((a, b) => a + b, 0)).toBe(6)
    }))

  it.effect("mirror: each image's mirror image comes from the same decode and the same calls, cached apart", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const run = (probe: Probe, mirror: boolean) =>
        Embedder.embedSamples(leftRightMeans(probe), [...samples.slice(0, 5), bad], { batchSize: 4, mirror }).pipe(
          Effect.provide(DiskEmbeddingCache.layer(dir))
        )
      const plainProbe: Probe = { calls: [] }
      const plain = yield* run(plainProbe, false)
      expect(plain.mirrored).toBeUndefined()

      // Originals are cached, mirror images are not yet: every image goes through the backbone twice.
      const cold: Probe = { calls: [] }
      const mirrored = yield* run(cold, true)
      expect(mirrored.skipped.map((s) => s.sample.id)).toEqual(["bad"])
      expect(cold.calls.every((n) => n <= 4)).toBe(true)
      expect(cold.calls.reduce((a, b) => a + b, 0)).toBe(10)
      expect(rows(mirrored.vectors)).toEqual(rows(plain.vectors))
      // The mirror image's left half is the image's right half.
      const original = rows(mirrored.vectors)
      rows(mirrored.mirrored!).forEach((m, i) => {
        const o = original[i]!
        for (let c = 0; c < 3; c++) {
          expect(m[c]).toBeCloseTo(o[3 + c]!, 5)
          expect(m[3 + c]).toBeCloseTo(o[c]!, 5)
        }
        expect(m).not.toEqual(o)
      })

      const warm: Probe = { calls: [] }
      const again = yield* run(warm, true)
      expect(warm.calls).toEqual([])
      expect(again.cacheHits).toBe(5)
      expect(rows(again.mirrored!)).toEqual(rows(mirrored.mirrored!))
    }))

  it.effect("several backbones in one pass: each gets what its own run gives; one with its vectors cached does no inference", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const cropped = Preprocess.imagenet({ size: 24, resizeShorter: 40 })
      const backbones = (probes: ReadonlyArray<Probe>) => [
        channelStats(probes[0]!),
        leftRightMeans(probes[1]!), // decoded as channelStats is: the two share each decode
        channelStats(probes[2]!, { preprocess: cropped }) // decoded another way
      ]
      const input = [...samples.slice(0, 3), bad, ...samples.slice(3, 6)]
      const alone = yield* Effect.forEach(backbones([{ calls: [] }, { calls: [] }, { calls: [] }]), (b) =>
        Embedder.embedSamples(b, input, { batchSize: 4, mirror: true }))
      const probes: Array<Probe> = [{ calls: [] }, { calls: [] }, { calls: [] }]
      const together = yield* Embedder.embedSamplesMany(backbones(probes), input, { batchSize: 4, mirror: true })
      expect(together.map((e) => e.backboneId)).toEqual(["test:channel-stats", "test:left-right-means", "test:channel-stats-cropped"])
      together.forEach((e, b) => {
        expect(e.samples.map((s) => s.id)).toEqual(alone[b]!.samples.map((s) => s.id))
        expect(e.skipped.map((s) => s.sample.id)).toEqual(["bad"])
        expect(rows(e.vectors)).toEqual(rows(alone[b]!.vectors))
        expect(rows(e.mirrored!)).toEqual(rows(alone[b]!.mirrored!))
      })
      expect(rows(together[2]!.vectors)).not.toEqual(rows(together[0]!.vectors))
      expect(probes.map((p) => p.calls.reduce((a, b) => a + b, 0))).toEqual([12, 12, 12])

      // With the first backbone's vectors cached, only the others run.
      const cached = DiskEmbeddingCache.layer(dir)
      yield* Embedder.embedSamples(channelStats({ calls: [] }), input, { mirror: true }).pipe(Effect.provide(cached))
      const warm: Array<Probe> = [{ calls: [] }, { calls: [] }, { calls: [] }]
      const again = yield* Embedder.embedSamplesMany(backbones(warm), input, { batchSize: 4, mirror: true }).pipe(Effect.provide(cached))
      expect(warm.map((p) => p.calls.reduce((a, b) => a + b, 0))).toEqual([0, 12, 12])
      expect(again.map((e) => e.cacheHits)).toEqual([6, 0, 0])
      again.forEach((e, b) => expect(rows(e.vectors)).toEqual(rows(alone[b]!.vectors)))
    }))

  it.effect("a file rewritten in place is embedded again, an unchanged one is known by its fingerprint", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = path.join(dir, "photo.jpg")
      const cacheLayer = DiskEmbeddingCache.layer(path.join(dir, "cache"))
      const embed = (probe: Probe) => Embedder.embedSamples(channelStats(probe), [{ id: "p", source: file }]).pipe(Effect.provide(cacheLayer))
      fs.copyFileSync(photos[0]!, file)
      const first = yield* embed({ calls: [] })
      // The cache now knows the file's content hash by its fingerprint.
      const fingerprint = EmbeddingCache.fileFingerprint(file, fs.statSync(file, { bigint: true }))
      const known = yield* Effect.flatMap(EmbeddingCache.EmbeddingCache, (c) => c.knownContentHash!(fingerprint)).pipe(Effect.provide(cacheLayer))
      expect(known).toBe(first.contentHashes[0])

      fs.copyFileSync(photos[5]!, file)
      const probe: Probe = { calls: [] }
      const second = yield* embed(probe)
      expect(probe.calls).toEqual([1])
      expect(second.contentHashes[0]).not.toBe(first.contentHashes[0])
      const direct = yield* Embedder.embedSamples(channelStats({ calls: [] }), [{ id: "q", source: photos[5]! }])
      expect(rows(second.vectors)).toEqual(rows(direct.vectors))
    }))

  it.live("decodes the next batch while the backbone runs, and reads only a bounded distance ahead", () =>
    Effect.gen(function*() {
      const probe: Probe = { calls: [] }
      const backbone = channelStats(probe, { delayMs: 60 })
      const bytes = photos.map((p) => new Uint8Array(fs.readFileSync(p)))
      const total = 96
      let pulled = 0
      let embedded = 0
      let pulledAfterFirstBatch = 0
      let maxAhead = 0
      const input = Stream.range(0, total - 1).pipe(
        Stream.rechunk(1),
        Stream.map((i) => ({ id: String(i), source: bytes[i % bytes.length]! })),
        Stream.tap(() => Effect.sync(() => pulled++))
      )
      const results = yield* Embedder.embedStream(backbone, input, { batchSize: 4, decodeConcurrency: 2 }).pipe(
        Stream.tap(() =>
          Effect.sync(() => {
            embedded++
            if (embedded === 4) pulledAfterFirstBatch = pulled
            maxAhead = Math.max(maxAhead, pulled - embedded)
          })
        ),
        Stream.runCollect
      )
      expect(Chunk.size(results)).toBe(total)
      // While batch 1 ran (60 ms), batch 2 was read and decoded.
      expect(pulledAfterFirstBatch).toBeGreaterThanOrEqual(8)
      // Never more than a few batches (of 4) ahead, however long the stream: grouping, two batches in preparation,
      // one waiting, one running.
      expect(maxAhead).toBeLessThanOrEqual(32)
    }))
})
