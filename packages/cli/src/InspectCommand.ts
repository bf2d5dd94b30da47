/**
 * `loupe inspect <dir>`: the data analyses of `@loupe/metrics` (`Insights`) on a folder of labelled photos, before
 * or without training a model. It embeds every image with one backbone (through the embedding cache, so a folder
 * `loupe train` has seen embeds for free), cross-validates a logistic regression on the training images for their
 * out-of-fold probabilities and folds, and prints the label-noise suspects, duplicates (and leaks across folds or
 * train/test), outliers and class health; `--json` prints them as one JSON object, `--report` writes an HTML page.
 *
 * @since 0.2.0
 */
import { Console, Effect, Option, pipe } from "effect"
import { Dataset, Registry } from "@loupe/core"
import type { Sample } from "@loupe/core"
import { FunctionsError, Inspection as ImageInspection } from "@loupe/functions"
import type { Insights } from "@loupe/metrics"
import { InsightsReport, TerminalReport } from "@loupe/metrics"
import * as path from "node:path"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, plugins } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"

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
 * The `inspect` command.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = DocumentedCommand.make(
  "inspect",
  {
    summary: "Find wrong labels, duplicates, leaks and outliers in a folder of labelled photos",
    details: [
      "The folder holds a subfolder per label, or train/ and test/ folders that each do. Every image is embedded (through " +
      "the embedding cache) and a logistic regression is cross-validated on the training images; confident learning " +
      "on its out-of-fold probabilities names the images whose label looks wrong, with the label it suggests. " +
      "Duplicates are exact (same bytes) or near (embeddings at cosine 0.89 or more, as edited copies of a photo are); " +
      "a pair is called out when its copies sit in different cross-validation folds or in train and test (a leak), or " +
      "carry different labels. Outliers are images far from every label's centre. Class health counts each label and " +
      "warns of labels with too few images or badly uneven counts."
    ],
    examples: ["loupe inspect ./photos", "loupe inspect ./photos --json > insights.json", "loupe inspect ./photos --report ./insights.html"]
  },
  {
    dir: Arg.directory("dir", "The folder of labelled photos", { exists: "yes" }),
    report: pipe(Flag.file("report", "Also write the insights as a self-contained HTML page to this file"), Flag.optional()),
    backbone: pipe(Flag.text("backbone", "<id>", "Embed with this backbone (ids: `loupe models list`)"), Flag.optional("the first backbone tagged `default`")),
    folds: pipe(Flag.integer("folds", "<n>", "Cross-validation folds"), Flag.withDefault(5)),
    seed: pipe(Flag.integer("seed", "<n>", "Seed of the folds"), Flag.withDefault(0)),
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      const found = yield* inspect(flags.dir, {
        ...Option.match(flags.backbone, { onNone: () => ({}), onSome: (backbone) => ({ backbone }) }),
        folds: flags.folds,
        seed: flags.seed
      })
      const report = Option.map(flags.report, (file) => path.resolve(file))
      if (Option.isSome(report)) {
        yield* InsightsReport.write(found.insights, report.value, { sources: found.sources, title: "Loupe dataset insights", subtitle: found.dir })
      }
      for (const s of found.skipped) yield* Effect.logWarning(`skipped ${s.file}: ${s.reason}`)
      yield* Console.log(
        flags.json
          ? JSON.stringify({
            dir: found.dir,
            backbone: found.backbone,
            ...found.insights,
            skipped: found.skipped,
            ...Option.match(report, { onNone: () => ({}), onSome: (file) => ({ report: file }) })
          })
          : `${found.dir} · ${found.backbone}\n${InsightsReport.text(found.insights, { color: TerminalReport.supportsColor(process.stdout) })}`
      )
      if (Option.isSome(report)) yield* Console.error(`Report saved to ${report.value}`)
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)
