import { describe, expect, it } from "@effect/vitest"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect } from "effect"
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import sharp from "sharp"
import { Matrix } from "@loupe/core"
import {
  Classification,
  ConfusionMatrixImage,
  HtmlReport,
  JsonReport,
  ReliabilityDiagram,
  TerminalReport
} from "@loupe/metrics"
import type { Report } from "@loupe/metrics"
import { catsVsDogs } from "../../../test/fixtures/shared.mjs"

const ansi = /\u001b\[[0-9;]*m/

const evaluation = Effect.runSync(
  Classification.evaluate(
    Int32Array.from([0, 0, 0, 1, 1, 2, 2, 2]),
    Matrix.fromRows([
      [.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.3, .6, .1], [.1, .1, .8], [.2, .2, .6], [.5, .1, .4]
    ]),
    ["cat", "dog <&> \"wolf\"", "bird"]
  )
)

const input: Report.ReportInput = {
  title: "Pets <v2>",
  subtitle: "/data/pets",
  generatedAt: new Date("2025-03-01T12:34:56Z"),
  model: { description: "MobileNetV2 + logistic", details: { backbone: "onnx:mobilenetv2-int8", "head.l2": 1 } },
  leaderboard: [
    { candidate: "mobilenet + logistic", metrics: { accuracy: 0.75, logLoss: 0.61 }, fitSeconds: 0.42, selected: true },
    { candidate: "mobilenet + knn", metrics: { accuracy: 0.7, logLoss: 0.55 }, fitSeconds: 0.01 }
  ],
  evaluations: [{
    name: "Test set",
    description: "8 images",
    evaluation,
    misclassified: [
      { source: path.join(catsVsDogs, "test/dogs/dog.4001.jpg"), id: "dogs/dog.4001.jpg", trueLabel: "dog", predictedLabel: "cat", confidence: 0.7 },
      { source: new Uint8Array([1, 2, 3]), trueLabel: "bird", predictedLabel: "cat", confidence: 0.5 }
    ]
  }],
  timings: [{ name: "embedding", seconds: 4.2 }]
}

describe("TerminalReport", () => {
  it("aligns its tables and uses no colour unless asked", () => {
    const text = TerminalReport.render(input)
    expect(text).not.toMatch(ansi)
    const lines = text.split("\n")
    const header = lines.find((l) => l.includes("precision") && l.includes("support"))!
    const cat = lines.find((l) => l.trimStart().startsWith("cat "))!
    // Right-aligned numeric columns end in the same place as their headers.
    expect(cat.length).toBe(header.length)
    expect(cat.indexOf("0.667") + 5).toBe(header.indexOf("precision") + "precision".length)
    expect(text).toMatch(/\n  accuracy +75\.0%  95% CI/)
    expect(text).toContain("true \\ predicted")
    expect(text).toContain("dogs/dog.4001.jpg")
    expect(text).toContain("✓ selected")
    expect(TerminalReport.render(input, { color: true })).toMatch(ansi)
  })

  it("colours only a TTY without NO_COLOR", () =>
    Effect.gen(function*() {
      const sink = (isTTY: boolean) => {
        const chunks: Array<string> = []
        return { isTTY, write: (s: string) => chunks.push(s), chunks }
      }
      const saved = process.env["NO_COLOR"]
      delete process.env["NO_COLOR"]
      const tty = sink(true)
      const pipe = sink(false)
      yield* TerminalReport.write(input, tty)
      yield* TerminalReport.write(input, pipe)
      process.env["NO_COLOR"] = "1"
      const noColor = sink(true)
      yield* TerminalReport.write(input, noColor)
      if (saved === undefined) delete process.env["NO_COLOR"]
      else process.env["NO_COLOR"] = saved
      expect(tty.chunks.join("")).toMatch(ansi)
      expect(pipe.chunks.join("")).not.toMatch(ansi)
      expect(noColor.chunks.join("")).not.toMatch(ansi)
    }).pipe(Effect.runSync))

  it("lists the most confused pairs instead of a matrix too wide to print", () => {
    const text = TerminalReport.render(input, { maxMatrixClasses: 2 })
    expect(text).not.toContain("true \\ predicted")
    expect(text).toMatch(/cat\s+→\s+dog <&> "wolf"\s+1/)
  })
})

describe("JsonReport", () => {
  it("has the documented, stable shape", () => {
    const json = JSON.parse(JsonReport.render(input))
    expect(Object.keys(json)).toEqual([
      "schema", "version", "title", "subtitle", "generatedAt", "model", "evaluations", "leaderboard", "timings"
    ])
    expect(json).toMatchObject({ schema: "loupe/report", version: 1, generatedAt: "2025-03-01T12:34:56.000Z" })
    const [named] = json.evaluations
    expect(Object.keys(named)).toEqual(["name", "description", "evaluation", "misclassified"])
    expect(Object.keys(named.evaluation)).toEqual([
      "labels", "total", "correct", "accuracy", "accuracyCI", "balancedAccuracy", "confusionMatrix", "perClass",
      "macro", "micro", "weighted", "topKAccuracy", "logLoss", "rocAuc", "ece", "calibration"
    ])
    expect(Object.keys(named.evaluation.perClass[0])).toEqual([
      "label", "precision", "recall", "f1", "support", "predicted", "correct", "rocAuc"
    ])
    expect(Object.keys(named.evaluation.accuracyCI)).toEqual(["level", "lower", "upper", "resamples", "seed"])
    expect(Object.keys(named.evaluation.calibration[0])).toEqual(["lower", "upper", "count", "confidence", "accuracy"])
    expect(named.evaluation).toEqual(JSON.parse(JSON.stringify(evaluation)))
    expect(named.misclassified[1]).toEqual({
      source: null, id: null, trueLabel: "bird", predictedLabel: "cat", confidence: 0.5
    })
    expect(json.leaderboard[1].selected).toBe(false)
  })

  it("fills optional parts so every key is always present", () => {
    const json = JsonReport.make({ title: "t", evaluations: [] })
    expect(json).toMatchObject({ subtitle: null, model: null, evaluations: [], leaderboard: [], timings: [] })
  })
})

describe("ConfusionMatrixImage", () => {
  it("draws one cell per pair, escapes labels, and renders to PNG with sharp", () =>
    Effect.gen(function*() {
      const svg = ConfusionMatrixImage.svg(evaluation.confusionMatrix, evaluation.labels)
      expect(svg.match(/class="cm-cell"/g)).toHaveLength(9)
      expect(svg).toContain("dog &lt;&amp;&gt; &quot;wolf&quot;")
      expect(svg).not.toContain("<&>")
      const width = Number(/width="(\d+)"/.exec(svg)![1])
      const png = yield* ConfusionMatrixImage.png(evaluation.confusionMatrix, evaluation.labels)
      expect([...png.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47])
      const meta = yield* Effect.promise(() => sharp(png).metadata())
      expect(meta.format).toBe("png")
      expect(meta.width).toBe(width * 2)
      const error = yield* Effect.flip(ConfusionMatrixImage.png(evaluation.confusionMatrix, evaluation.labels, { scale: 0 }))
      expect(error).toMatchObject({ reason: "InvalidOption", field: "scale" })
    }).pipe(Effect.runPromise))

  it("links the cells it is given links for, escaped, and no others", () => {
    const svg = ConfusionMatrixImage.svg(evaluation.confusionMatrix, evaluation.labels, {
      cellHref: (t, p) => (t === p ? undefined : `/grid?given=${evaluation.labels[t]}&predicted=${evaluation.labels[p]}`)
    })
    const links = [...svg.matchAll(/<a href="([^"]*)"[^>]*><g class="cm-cell" data-true="(\d)" data-predicted="(\d)"/g)]
    expect(links.map((m) => [Number(m[2]), Number(m[3])])).toEqual([[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]])
    expect(links[0]![1]).toBe("/grid?given=cat&amp;predicted=dog &lt;&amp;&gt; &quot;wolf&quot;")
    expect(svg.match(/<\/a>/g)).toHaveLength(6)
  })
})

describe("ReliabilityDiagram", () => {
  it("draws a bar per non-empty bin and shows the ECE", () => {
    const svg = ReliabilityDiagram.svg(evaluation.calibration, { ece: evaluation.ece })
    const filled = evaluation.calibration.filter((b) => b.count > 0).length
    expect(svg.match(/class="rd-bin"/g)).toHaveLength(filled)
    expect(svg).toContain(`ECE ${evaluation.ece.toFixed(3)}`)
  })
})

describe("HtmlReport", () => {
  it("turns unreadable images into placeholders and escapes text", () =>
    Effect.gen(function*() {
      const html = yield* HtmlReport.render(input)
      expect(html.match(/<img class="thumb"/g)).toHaveLength(1)
      expect(html.match(/class="broken"/g)).toHaveLength(1)
      expect(html).toContain("<title>Pets &lt;v2&gt;</title>")
      expect(html).not.toContain("<v2>")
      expect(html).toContain("2025-03-01 12:34 UTC")
    }).pipe(Effect.runPromise))

  it("writes the file, creating folders, and names the file when it cannot", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(path.join(tmpdir(), "loupe-report-")))
      const file = path.join(dir, "a", "b", "report.html")
      yield* HtmlReport.write({ ...input, evaluations: [] }, file)
      const written = yield* Effect.promise(() => readFile(file, "utf8"))
      expect(written.startsWith("<!doctype html>")).toBe(true)
      const blocked = path.join(file, "report.html")
      const error = yield* Effect.flip(HtmlReport.write(input, blocked))
      expect(error).toMatchObject({ _tag: "MetricsError", reason: "Io", file: blocked })
      yield* Effect.promise(() => rm(dir, { recursive: true, force: true }))
    }).pipe(Effect.provide(NodeFileSystem.layer), Effect.runPromise))

  it("replaces only a report Loupe wrote: another file of that name is refused and kept", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(path.join(tmpdir(), "loupe-report-")))
      const html = path.join(dir, "report.html")
      const json = path.join(dir, "report.json")
      yield* HtmlReport.write({ ...input, evaluations: [] }, html)
      yield* JsonReport.write({ ...input, evaluations: [] }, json)
      // Loupe's own reports are replaced in place.
      yield* HtmlReport.write({ ...input, title: "second", evaluations: [] }, html)
      yield* JsonReport.write({ ...input, title: "second", evaluations: [] }, json)
      expect(yield* Effect.promise(() => readFile(html, "utf8"))).toContain("<title>second</title>")
      expect(JSON.parse(yield* Effect.promise(() => readFile(json, "utf8"))).title).toBe("second")
      // A user's files are not.
      const notes = path.join(dir, "notes.html")
      const data = path.join(dir, "data.json")
      yield* Effect.promise(() => writeFile(notes, "<html><body>my notes</body></html>"))
      yield* Effect.promise(() => writeFile(data, "{\"rows\": [1, 2, 3]}"))
      for (const [file, write] of [[notes, HtmlReport.write], [data, JsonReport.write]] as const) {
        const error = yield* Effect.flip(write({ ...input, evaluations: [] }, file))
        expect(error).toMatchObject({ _tag: "MetricsError", reason: "Io", file })
        expect(error.message).toContain("not a Loupe report")
      }
      expect(yield* Effect.promise(() => readFile(notes, "utf8"))).toBe("<html><body>my notes</body></html>")
      expect(yield* Effect.promise(() => readFile(data, "utf8"))).toBe("{\"rows\": [1, 2, 3]}")
      // No temporary file is left beside them.
      expect((yield* Effect.promise(() => readdir(dir))).sort()).toEqual(["data.json", "notes.html", "report.html", "report.json"])
      yield* Effect.promise(() => rm(dir, { recursive: true, force: true }))
    }).pipe(Effect.provide(NodeFileSystem.layer), Effect.runPromise))
})
