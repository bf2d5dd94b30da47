/**
 * `loupe inspect <dir|function>`: the data analyses of `@loupe/metrics` (`Insights`) on a folder of labelled photos,
 * before or without training a model, or on a function's samples in a store (`Functions.insights`). It embeds every image with one backbone (through the embedding cache, so a folder
 * `loupe train` has seen embeds for free), cross-validates a logistic regression on the training images for their
 * out-of-fold probabilities and folds, and prints the label-noise suspects, duplicates (and leaks across folds or
 * train/test), outliers and class health; `--json` prints them as one JSON object, `--report` writes an HTML page.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option, pipe } from "effect"
import type { FileSystem } from "@effect/platform"
import { Dataset, Registry } from "@loupe/core"
import type { EmbeddingCache, LoupeConfig, Sample } from "@loupe/core"
import { BlobStore, Functions, FunctionsError, Inspection as ImageInspection, Store } from "@loupe/functions"
import type { Insights } from "@loupe/metrics"
import { InsightsReport, TerminalReport } from "@loupe/metrics"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"
import { store } from "./FunctionCommand.js"

/**
 * What `inspect` found: the backbone used, the insights, and the images that could not be read.
 *
 * @since 0.2.0
 * @category models
 */
export interface Inspection {
  readonly dir: string
  readonly backbone: string
  readonly insights: Insights.Insights
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>
  /** Each image's source by id, for the HTML report's thumbnails. */
  readonly sources: ReadonlyMap<string, Sample.ImageSource>
}

/**
 * Embeds `dir` (a folder per label, or `train/` and `test/` folders of them) with `backbone` (default: the first
 * registered backbone tagged `default`), cross-validates a default logistic regression on the training images
 * (`folds` folds, images with the same bytes in one fold, `seed`), and runs `Insights.analyse`, all through
 * `Inspection.inspect` of `@loupe/functions`. Labels with fewer than two training images stay out of the
 * cross-validation; with fewer than two labels left there are no suspects and no recall. Fails with `CoreError` when the
 * folder or a backbone cannot be read, `FunctionsError` when no backbone is tagged `default` or cross-validation
 * fails, `MetricsError` when the analyses reject their input.
 *
 * @since 0.2.0
 * @category inspection
 */
export const inspect = Effect.fn("InspectCommand.inspect")(function*(
  dir: string,
  options: { readonly backbone?: string; readonly folds?: number; readonly seed?: number } = {}
) {
  const registry = yield* Registry.Registry
  const backbone = options.backbone ?? registry.backbonesWithTags(["default"])[0]?.info.id
  if (backbone === undefined) {
    return yield* new FunctionsError.FunctionsError({ reason: "NoBackbone", field: "--backbone", message: "No --backbone given and none is tagged `default`" })
  }
  const split = yield* Dataset.fromSplitFolders(dir)
  const labels = [...new Set([...split.train.labels, ...(split.test?.labels ?? [])])].sort()
  // With a test split, ids name it: `train/cats/1.jpg` and `test/cats/1.jpg` are different images.
  const images = (samples: ReadonlyArray<Sample.Sample>, from: "train" | "test"): Array<ImageInspection.Image> =>
    samples.map((s) => ({ id: split.test ? `${from}/${s.id}` : s.id, source: s.source, label: s.label, split: from }))
  const found = yield* ImageInspection.inspect([...images(split.train.samples, "train"), ...images(split.test?.samples ?? [], "test")], {
    backbone,
    labels,
    ...(options.folds === undefined ? {} : { folds: options.folds }),
    ...(options.seed === undefined ? {} : { seed: options.seed })
  })
  return {
    dir: path.resolve(dir),
    backbone,
    insights: found.insights,
    skipped: [...split.train.skipped, ...(split.test?.skipped ?? []), ...found.skipped.map((s) => ({ file: s.id, reason: s.reason }))],
    sources: found.sources
  } satisfies Inspection
})

/**
 * What `inspect` found in a function of a store (`inspectFunction`): the function's insights (`Functions.insights`,
 * samples named by id) and each sample's image file by id, for the HTML report's thumbnails.
 *
 * @since 0.2.0
 * @category models
 */
export interface FunctionInspection {
  readonly store: string
  readonly insights: Functions.FunctionInsights
  readonly sources: ReadonlyMap<string, Sample.ImageSource>
}

/**
 * The insights of the function `functionId` of the store folder `storeDir` (see `Functions.insights`: its samples,
 * embedded with its serving model's backbone, cross-validated with its preset's folds and seed). Starts no training.
 * Fails with `FunctionsError`: `NotFound` for an unknown function, `TooFewSamples` before 2 labels have 2 annotated
 * samples, `StoreFailed` when the store cannot be opened.
 *
 * @since 0.2.0
 * @category inspection
 */
export const inspectFunction = (
  storeDir: string,
  functionId: string
): Effect.Effect<
  FunctionInspection,
  FunctionsError.FunctionsError,
  LoupeConfig.LoupeConfig | EmbeddingCache.EmbeddingCache | Registry.Registry | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    const blobs = yield* BlobStore.BlobStore
    const insights = yield* functions.insights(functionId)
    const samples = yield* functions.listSamples(functionId)
    const files = yield* Effect.forEach(samples, (s) => Effect.option(blobs.localFile(Store.imageKey(functionId, s.contentHash))))
    const sources = new Map(samples.flatMap((s, i) => Option.match(files[i]!, { onNone: () => [], onSome: (file) => [[s.id, file] as const] })))
    return { store: storeDir, insights, sources } satisfies FunctionInspection
  }).pipe(Effect.provide(Functions.layerDirectory(storeDir, { resumeOnStart: false })))

/** A function id (`function_<hex>`) rather than a folder. */
const isFunctionId = (argument: string) => /^function_[0-9a-f]+$/.test(argument)

/**
 * The `inspect` command.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = DocumentedCommand.make(
  "inspect",
  {
    summary: "Find wrong labels, duplicates, leaks and outliers in a folder of labelled photos or a function's samples",
    details: [
      "The folder holds a subfolder per label, or train/ and test/ folders that each do. Given a function id instead " +
      "(`function_...`), the function's samples in the store (`--store`) are inspected, annotated or not, with the " +
      "backbone of its serving model and its preset's folds and seed (--backbone, --folds and --seed are for folders). " +
      "Every image is embedded (through " +
      "the embedding cache) and a logistic regression is cross-validated on the training images; confident learning " +
      "on its out-of-fold probabilities names the images whose label looks wrong, with the label it suggests. " +
      "Duplicates are exact (same bytes) or near (embeddings at cosine 0.89 or more, as edited copies of a photo are); " +
      "a pair is called out when its copies sit in different cross-validation folds or in train and test (a leak), or " +
      "carry different labels. Outliers are images far from every label's centre. Class health counts each label and " +
      "warns of labels with too few images or badly uneven counts."
    ],
    examples: [
      "loupe inspect ./photos",
      "loupe inspect ./photos --json > insights.json",
      "loupe inspect ./photos --report ./insights.html",
      "loupe inspect function_3fa94c0e21b7d5a86c10 --store ./store --report ./insights.html"
    ]
  },
  {
    dir: Arg.text("dir-or-function", "The folder of labelled photos, or the id of a function of the store"),
    report: pipe(Flag.file("report", "Also write the insights as a self-contained HTML page to this file"), Flag.optional()),
    backbone: pipe(Flag.text("backbone", "<id>", "Embed with this backbone (ids: `loupe models list`)"), Flag.optional("the first backbone tagged `default`")),
    folds: pipe(Flag.integer("folds", "<n>", "Cross-validation folds"), Flag.withDefault(5)),
    seed: pipe(Flag.integer("seed", "<n>", "Seed of the folds"), Flag.withDefault(0)),
    store,
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      const report = Option.map(flags.report, (file) => path.resolve(file))
      const found = isFunctionId(flags.dir) && !fs.existsSync(flags.dir)
        ? yield* Effect.map(inspectFunction(path.resolve(flags.store), flags.dir), (f) => {
          const { backbone, functionId, modelId, skipped, ...insights } = f.insights
          return {
            heading: `${functionId} in ${f.store} · ${backbone}`,
            about: { store: f.store, functionId, modelId, backbone },
            insights,
            skipped: skipped.map((s) => ({ file: s.sampleId, reason: s.reason })),
            sources: f.sources
          }
        })
        : yield* Effect.map(
          inspect(flags.dir, {
            ...Option.match(flags.backbone, { onNone: () => ({}), onSome: (backbone) => ({ backbone }) }),
            folds: flags.folds,
            seed: flags.seed
          }),
          (f) => ({ heading: `${f.dir} · ${f.backbone}`, about: { dir: f.dir, backbone: f.backbone }, insights: f.insights, skipped: f.skipped, sources: f.sources })
        )
      if (Option.isSome(report)) {
        yield* InsightsReport.write(found.insights, report.value, { sources: found.sources, title: "Loupe dataset insights", subtitle: found.heading })
      }
      for (const s of found.skipped) yield* Effect.logWarning(`skipped ${s.file}: ${s.reason}`)
      yield* Console.log(
        flags.json
          ? JSON.stringify({
            ...found.about,
            ...found.insights,
            skipped: found.skipped,
            ...Option.match(report, { onNone: () => ({}), onSome: (file) => ({ report: file }) })
          })
          : `${found.heading}\n${InsightsReport.text(found.insights, { color: TerminalReport.supportsColor(process.stdout) })}`
      )
      if (Option.isSome(report)) yield* Console.error(`Report saved to ${report.value}`)
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)
