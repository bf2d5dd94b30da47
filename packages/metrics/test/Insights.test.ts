import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Matrix, Prng } from "@loupe/core"
import { ClassHealth, Duplicates, Insights, InsightsReport, LabelNoise, Outliers } from "@loupe/metrics"

const rows = (values: ReadonlyArray<ReadonlyArray<number>>) => Matrix.fromRows(values)

describe("LabelNoise.find", () => {
  // Label 0's images: mean p0 = (0.9 + 0.8 + 0.2 + 0.7) / 4 = 0.65; label 1's: mean p1 = (0.9 + 0.6 + 0.3) / 3 = 0.6.
  const y = Int32Array.from([0, 0, 0, 0, 1, 1, 1])
  const proba = rows([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9], [0.4, 0.6], [0.7, 0.3]])

  it("counts the confident joint with per-label thresholds and ranks the off-diagonal by self-confidence", () => {
    const result = LabelNoise.find(y, proba)
    expect(result.thresholds[0]).toBeCloseTo(0.65, 6)
    expect(result.thresholds[1]).toBeCloseTo(0.6, 6)
    // Row 2 (label 0, p1 = 0.8 >= 0.6) counts as 1; row 6 (label 1, p0 = 0.7 >= 0.65) counts as 0; row 5 reaches 0.6.
    expect(result.confidentJoint).toEqual([[3, 1], [1, 2]])
    expect(result.suspects.map((s) => [s.index, s.given, s.suggested])).toEqual([[2, 0, 1], [6, 1, 0]])
    expect(result.suspects[0]!.selfConfidence).toBeCloseTo(0.2, 6)
    expect(result.suspects[1]!.suggestedConfidence).toBeCloseTo(0.7, 6)
  })

  it("leaves an image below every threshold uncounted", () => {
    // Three labels; row 3 (label 2) has p = 0.4 for labels 0 and 1, below both thresholds (0.8 and 0.8).
    const result = LabelNoise.find(Int32Array.from([0, 1, 2, 2]), rows([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]]))
    expect(result.confidentJoint.flat().reduce((a, b) => a + b, 0)).toBe(3)
    expect(result.suspects).toEqual([])
  })

  it("names the field of malformed input", () => {
    expect(() => LabelNoise.find(Int32Array.from([0, 2]), proba)).toThrow(/proba has 7 rows/)
    expect(() => LabelNoise.find(Int32Array.from([0, 0, 0, 0, 1, 1, 2]), proba)).toThrow(/y\[6\] is 2/)
  })
})

describe("Duplicates.find", () => {
  // Rows 0 and 1 share a hash; row 2 is row 3 turned by a small angle (cos 0.995); row 4 is orthogonal to all.
  const angle = Math.acos(0.995)
  const embeddings = rows([
    [1, 0, 0, 0],
    [1, 0, 0, 0],
    [0, Math.cos(angle), Math.sin(angle), 0],
    [0, 1, 0, 0],
    [0, 0, 0, 1]
  ])
  const contentHashes = ["h0", "h0", "h2", "h3", "h4"]

  it("finds exact duplicates by hash and near ones by cosine, with leaks and conflicts", () => {
    const pairs = Duplicates.find({
      embeddings,
      contentHashes,
      y: Int32Array.from([0, 1, 1, 1, 0]),
      folds: Int32Array.from([0, 0, 1, 2, 0]),
      splits: ["train", "train", "train", "train", "test"]
    }, { threshold: 0.99 })
    expect(pairs).toHaveLength(2)
    expect(pairs[0]).toEqual({ a: 0, b: 1, kind: "exact", similarity: 1, conflict: true })
    expect(pairs[1]).toMatchObject({ a: 2, b: 3, kind: "near", leak: "fold", conflict: false })
    expect(pairs[1]!.similarity).toBeCloseTo(0.995, 5)
  })

  it("says a pair across splits leaks by split, and misses nothing a full scan finds", () => {
    expect(Duplicates.find({ embeddings, splits: ["train", "train", "train", "test", "test"] }, { threshold: 0.99 })
      .find((p) => p.a === 2)).toMatchObject({ leak: "split" })
    // 300 random vectors in 40 dimensions, each with a noisy copy: the pruned search against every pair's cosine.
    let state = 1
    const next = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5
    const base = Array.from({ length: 300 }, () => Array.from({ length: 40 }, next))
    const all = [...base, ...base.map((v) => v.map((a) => a + 0.08 * next()))]
    const x = rows(all)
    const cos = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) =>
      a.reduce((s, v, t) => s + v * b[t]!, 0) / Math.hypot(...a) / Math.hypot(...b)
    const expected: Array<string> = []
    for (let i = 0; i < all.length; i++) for (let j = i + 1; j < all.length; j++) if (cos(all[i]!, all[j]!) >= 0.95) expected.push(`${i}-${j}`)
    const found = Duplicates.find({ embeddings: x }, { threshold: 0.95, dims: 8 }).map((p) => `${p.a}-${p.b}`)
    expect(expected.length).toBeGreaterThan(250)
    expect(found.sort()).toEqual(expected.sort())
  })
})

describe("Outliers.find", () => {
  it("flags the image far from every label's centre, and only it", () => {
    // Two clusters of 20 around axes 0 and 1 of a 16-dimensional space, with noise; one image along axis 2.
    let state = 7
    const noise = () => 0.15 * (((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5)
    const cluster = (axis: number) => Array.from({ length: 20 }, () => Array.from({ length: 16 }, (_, t) => (t === axis ? 1 : 0) + noise()))
    const x = rows([...cluster(0), ...cluster(1), Array.from({ length: 16 }, (_, t) => (t === 2 ? 1 : 0) + noise())])
    const y = Int32Array.from([...new Array(20).fill(0), ...new Array(20).fill(1), 1])
    const outliers = Outliers.find(x, y, 2)
    expect(outliers.map((o) => o.index)).toEqual([40])
    expect(outliers[0]!.score).toBeGreaterThan(3.5)
    // Unlabelled, it is still far from both centres.
    expect(Outliers.find(x, Int32Array.from(y, (c, i) => (i === 40 ? -1 : c)), 2).map((o) => o.index)).toEqual([40])
  })

  it("flags an image of another kind filed under a label, and few of the labels' own, when cosines crowd together", () => {
    // As CNN features are: all positive, so every cosine is high. Two labels of 100 images, each image its label's
    // prototype plus positive skewed noise; the stray is another prototype with the same noise, filed under label 0.
    const prng = Prng.make(3)
    const dims = 64
    const prototype = () => Array.from({ length: dims }, () => prng.next())
    const image = (p: ReadonlyArray<number>) => p.map((v) => v * (0.5 + prng.next()) + 0.8 * prng.next() ** 3)
    const [cats, dogs, flowers] = [prototype(), prototype(), prototype()]
    const x = rows([...Array.from({ length: 100 }, () => image(cats)), ...Array.from({ length: 100 }, () => image(dogs)), image(flowers)])
    const y = Int32Array.from({ length: 201 }, (_, i) => (i < 100 || i === 200 ? 0 : 1))
    const flagged = Outliers.find(x, y, 2).map((o) => o.index)
    expect(flagged[0]).toBe(200)
    // A normal spread would put 0.05 % of the labels' own images past 3.5; allow a longer tail, not a flood.
    expect(flagged.length - 1).toBeLessThanOrEqual(4)
  })
})

describe("ClassHealth.check", () => {
  it("counts labels, warns of too few and of imbalance, and computes CV recall", () => {
    const y = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 1, 1, -1])
    const proba = rows([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5]])
    const health = ClassHealth.check(y, 3, undefined, { minimumPerLabel: 3 })
    expect(health.perLabel.map((l) => l.count)).toEqual([7, 2, 0])
    expect(health.unlabelled).toBe(1)
    expect(health.imbalanceRatio).toBe(3.5)
    expect(health.warnings).toEqual([
      { kind: "TooFew", label: 1, count: 2, minimum: 3 },
      { kind: "Empty", label: 2 },
      { kind: "Imbalance", largest: 0, smallest: 1, ratio: 3.5 }
    ].sort((a, b) => (a.kind === "Imbalance" ? 1 : 0) - (b.kind === "Imbalance" ? 1 : 0) || ("label" in a && "label" in b ? a.label - b.label : 0)))
    const withRecall = ClassHealth.check(Int32Array.from(y.subarray(0, 9)), 2, Matrix.takeRows(proba, [0, 1, 2, 3, 4, 5, 6, 7, 8]))
    expect(withRecall.perLabel.map((l) => l.recall)).toEqual([6 / 7, 1 / 2])
  })
})

describe("Insights.analyse", () => {
  it.effect("names every finding by image id and label", () =>
    Effect.gen(function*() {
      const insights = yield* Insights.analyse({
        labels: ["cats", "dogs"],
        ids: ["a", "b", "c", "d"],
        y: Int32Array.from([0, 0, 1, 1]),
        embeddings: rows([[1, 0], [1, 0.01], [0, 1], [0.01, 1]]),
        contentHashes: ["1", "2", "3", "4"],
        outOfFold: { rows: [0, 1, 2, 3], proba: rows([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]]), folds: Int32Array.from([0, 1, 0, 1]) }
      }, { health: { minimumPerLabel: 2 } })
      expect(insights.suspects).toEqual([{ id: "b", given: "cats", suggested: "dogs", selfConfidence: expect.closeTo(0.2, 6), suggestedConfidence: expect.closeTo(0.8, 6) }])
      expect(insights.duplicates.map((p) => [p.a, p.b, p.leak])).toEqual([["a", "b", "fold"], ["c", "d", "fold"]])
      expect(insights.health.perLabel).toEqual([{ label: "cats", count: 2, recall: 0.5 }, { label: "dogs", count: 2, recall: 1 }])
    }))

  it.effect("fails with a MetricsError naming the field", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Insights.analyse({ labels: ["a"], ids: ["x"], y: Int32Array.from([0, 0]), embeddings: rows([[1], [1]]) }))
      expect(exit).toStrictEqual(Exit.fail(expect.anything()))
      if (Exit.isFailure(exit)) expect(JSON.stringify(exit.cause)).toContain("ids")
    }))
})

describe("InsightsReport", () => {
  const hostile = "<script>alert(1)</script>"
  const rtl = "cat\u202Egpj.exe"
  const insights: Insights.Insights = {
    version: 1,
    images: 2,
    labels: [hostile, rtl],
    health: { perLabel: [{ label: hostile, count: 1, recall: 1 }, { label: rtl, count: 1, recall: 0 }], unlabelled: 0, imbalanceRatio: 1, warnings: [] },
    suspects: [{ id: `${hostile}.jpg`, given: hostile, suggested: rtl, selfConfidence: 0.1, suggestedConfidence: 0.9 }],
    duplicates: [{ a: "a.jpg", b: "b.jpg", labelA: hostile, labelB: rtl, kind: "near", similarity: 0.95, leak: "split", conflict: true }],
    outliers: []
  }

  it.effect("escapes label names and ids in the HTML page, which has no script", () =>
    Effect.gen(function*() {
      const html = yield* InsightsReport.render(insights, { sources: new Map() })
      expect(html).not.toMatch(/<script/i)
      expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;")
      expect(html).toContain(`<bdi>${rtl}</bdi>`)
      expect(html).toContain("train/test leak")
      expect(html).toContain("could not read this image")
    }))

  it("prints suspects, duplicates with their leak and conflict, and the counts in the terminal text", () => {
    const text = InsightsReport.text(insights)
    expect(text).toContain("Label-noise suspects · 1")
    expect(text).toMatch(/train\/test leak, labels differ/)
  })
})
