#!/usr/bin/env node
/**
 * The `loupe` command line.
 *
 * @since 0.1.0
 */
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Option, pipe } from "effect"
import { JsonReport, TerminalReport } from "@loupe/metrics"
import type { Report } from "@loupe/metrics"
import * as path from "node:path"
import * as Evaluate from "./Evaluate.js"
import * as ExportCommand from "./ExportCommand.js"
import * as FunctionCommand from "./FunctionCommand.js"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, offline, overrides, overwrite, parseOverrides, plugins, preset, presetsHelp } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Failure from "./internal/Failure.js"
import * as Flag from "./internal/Flag.js"
import * as HelpText from "./internal/HelpText.js"
import * as InspectCommand from "./InspectCommand.js"
import * as KeysCommand from "./KeysCommand.js"
import * as ModelsCommand from "./ModelsCommand.js"
import * as Predict from "./Predict.js"
import { FunctionsError, Preset } from "@loupe/functions"
import * as ReportFile from "./ReportFile.js"
import * as ServeCommand from "./ServeCommand.js"
import * as TagsTrain from "./TagsTrain.js"
import * as Train from "./Train.js"
import * as TrainSummary from "./TrainSummary.js"
import * as WorkerCommand from "./WorkerCommand.js"
import * as ZeroShotTrain from "./ZeroShotTrain.js"

const VERSION = "0.1.0"

const report = pipe(
  Flag.file("report", "Also write a report to this file: a self-contained page (.html) or JSON (.json)"),
  Flag.optional()
)

const train = DocumentedCommand.make(
  "train",
  {
    summary: "Train an image classifier on a folder of labelled photos and save it as a bundle",
    details: [
      "The folder holds a subfolder per label (cats/, dogs/, ...), or train/ and test/ folders that each do; with a " +
      "test/ folder, the model is also scored on it. The preset's search picks the backbone and head by " +
      "cross-validation. The bundle is a folder that `loupe predict`, `loupe evaluate` and `loupe serve --bundle` load.",
      "With --zero-shot nothing is trained: the first backbone with a text tower (CLIP, SigLIP) classifies from the label " +
      "names alone, in prompt templates such as \"a photo of a {}.\", and the run reports its accuracy on the test/ " +
      "folder (or on every image without one) and saves that zero-shot model as the bundle.",
      "With --tags the model is multi-label (image tags): each image has zero or more tags, and the model answers " +
      "every tag with its probability and whether it passes that tag's threshold (chosen by cross-validation). The " +
      "folder holds a manifest, tags.csv (lines \"path,tag1;tag2\": tags separated by semicolons, an empty field for " +
      "none; an optional header \"path,tags\") or tags.jsonl (lines {\"path\": ..., \"tags\": [...]}), paths relative " +
      "to the folder. It prints the cross-validated micro and macro precision, recall and F1, mAP and each tag's scores.",
      presetsHelp
    ],
    examples: [
      "loupe train ./photos --out ./pets-model --report ./pets-report.html",
      "loupe train ./tagged-photos --tags --out ./tags-model",
      "loupe train ./photos --backbone hf:Xenova/dinov2-small --out ./pets-dinov2",
      "loupe train ./photos --zero-shot --backbone hf:Xenova/clip-vit-base-patch32 --out ./pets-zero-shot"
    ]
  },
  {
    dir: Arg.directory("dir", "The folder of labelled photos", { exists: "yes" }),
    out: pipe(
      Flag.directory("out", "Where to save the bundle: a new or empty folder, or an earlier bundle with --overwrite (anything else is refused)"),
      Flag.withDefault("loupe-model", "./loupe-model")
    ),
    overwrite,
    preset: preset("fast"),
    overrides,
    backbone: pipe(
      Flag.text(
        "backbone",
        "<id>",
        "Search this backbone instead of the preset's choice: an id `loupe models list` shows, a hub model " +
          "hf:<org>/<name>[@<revision>] (pulled when missing, unless --offline) or a model folder (./path)"
      ),
      Flag.repeated
    ),
    folds: pipe(Flag.integer("folds", "<n>", "Cross-validation folds, instead of the preset's"), Flag.optional()),
    seed: pipe(
      Flag.integer("seed", "<n>", "Seed of every random choice (folds, augmentation, initial weights): the same data and seed train the same model"),
      Flag.optional(String(Preset.defaults.seed))
    ),
    report,
    zeroShot: Flag.boolean("zero-shot", "Train nothing: evaluate and save the zero-shot classifier of the label names (needs a backbone with a text tower)"),
    tags: Flag.boolean("tags", "Train an image-tags (multi-label) model from the folder's tags.csv or tags.jsonl manifest (see above)"),
    modelsDir,
    plugins,
    offline,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      const fromFlags = {
        ...(flags.backbone.length > 0 ? { backbones: { ids: flags.backbone } } : {}),
        ...Option.match(flags.folds, { onNone: () => ({}), onSome: (folds) => ({ folds }) }),
        ...Option.match(flags.seed, { onNone: () => ({}), onSome: (seed) => ({ seed }) })
      }
      // Flags win over --overrides; JSON that is not an object goes to the preset check as it is, to be rejected there.
      const user = yield* parseOverrides(flags.overrides)
      const isObject = typeof user === "object" && user !== null && !Array.isArray(user)
      const resolved = yield* Preset.resolve(flags.preset, user === undefined || isObject ? { ...user as object, ...fromFlags } : user).pipe(
        Effect.flatMap(Preset.forTraining)
      )
      if (flags.tags) {
        if (flags.zeroShot || Option.isSome(flags.report)) {
          return yield* new FunctionsError.FunctionsError({
            reason: "InvalidOptions",
            field: "tags",
            message: `--tags does not take ${flags.zeroShot ? "--zero-shot" : "--report"}: a tags run prints its metrics (--json for all of them)`
          })
        }
        const { backbones, folds, seed } = yield* Preset.fitOptions(resolved)
        const tagged = yield* TagsTrain.train({
          dir: flags.dir,
          out: flags.out,
          overwrite: flags.overwrite,
          ...(backbones === undefined ? {} : { backbones }),
          ...(folds === undefined ? {} : { folds }),
          ...(seed === undefined ? {} : { seed })
        })
        return yield* Console.log(flags.json ? JSON.stringify(TagsTrain.toJson(tagged)) : TagsTrain.toText(tagged))
      }
      if (flags.zeroShot) {
        const zeroShot = yield* ZeroShotTrain.run({
          dir: flags.dir,
          out: flags.out,
          overwrite: flags.overwrite,
          backbones: (yield* Preset.fitOptions(resolved)).backbones ?? [],
          ...Option.match(flags.report, { onNone: () => ({}), onSome: (report) => ({ report }) })
        })
        return yield* Console.log(flags.json ? JSON.stringify(TrainSummary.zeroShotJson(zeroShot)) : TrainSummary.zeroShotText(zeroShot))
      }
      const result = yield* Train.train({
        dir: flags.dir,
        out: flags.out,
        overwrite: flags.overwrite,
        ...(yield* Preset.fitOptions(resolved)),
        ...Option.match(flags.report, { onNone: () => ({}), onSome: (report) => ({ report }) })
      })
      yield* Console.log(flags.json ? JSON.stringify(TrainSummary.toJson(result)) : TrainSummary.toText(result))
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)

const predict = DocumentedCommand.make(
  "predict",
  {
    summary: "Predict the label (or the tags) of each image with a saved bundle",
    details: [
      "Prints a line per image: the file, the predicted label and its probability (or the reason it was skipped).",
      "With a tags bundle (`loupe train --tags`): the file, the tags that pass their thresholds, and every tag's " +
      "probability; --json gives each tag's probability, threshold and whether it passes."
    ],
    examples: ["loupe predict ./pets-model cat.jpg dog.png"]
  },
  {
    bundle: Arg.directory("bundle", "The bundle folder that `loupe train` wrote", { exists: "yes" }),
    images: Arg.atLeastOne(Arg.file("image", "An image file (JPEG, PNG, WebP, ...)")),
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      if (yield* Predict.isTagsBundle(flags.bundle)) {
        const tagLines = yield* Predict.predictTagFiles(flags.bundle, flags.images)
        if (flags.json) return yield* Console.log(JSON.stringify({ predictions: tagLines }))
        for (const line of tagLines) {
          const passing = line.tags.filter((t) => t.passes).map((t) => t.tag).join(",")
          yield* Console.log(
            line.error
              ? `${line.file}\terror: ${line.error}`
              : `${line.file}\t${passing === "" ? "-" : passing}\t${line.tags.map((t) => `${t.tag}=${t.probability.toFixed(4)}`).join(" ")}`
          )
        }
        return
      }
      const lines = yield* Predict.predictFiles(flags.bundle, flags.images)
      if (flags.json) {
        yield* Console.log(JSON.stringify({ predictions: lines }))
        return
      }
      for (const line of lines) {
        yield* Console.log(
          line.error
            ? `${line.file}\terror: ${line.error}`
            : `${line.file}\t${line.labelName}\t${line.confidence!.toFixed(4)}`
        )
      }
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)

const evaluate = DocumentedCommand.make(
  "evaluate",
  {
    summary: "Score a saved bundle on a folder of labelled photos",
    details: ["Prints accuracy, per-label precision and recall, the confusion matrix and the misclassified images."],
    examples: ["loupe evaluate ./pets-model ./photos/test --report ./evaluation.html"]
  },
  {
    bundle: Arg.directory("bundle", "The bundle folder that `loupe train` wrote", { exists: "yes" }),
    dir: Arg.directory("dir", "A folder with a subfolder of photos per label", { exists: "yes" }),
    report,
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
      const result = yield* Evaluate.evaluateFolder(flags.bundle, flags.dir)
      const input: Report.ReportInput = {
        title: `Evaluation of ${flags.bundle}`,
        subtitle: result.dir,
        model: { description: `${result.manifest.backbone.id} + ${result.manifest.head.kind}` },
        evaluations: [{ name: "Evaluation", evaluation: result.evaluation, misclassified: result.misclassified }]
      }
      const reportFile = Option.map(flags.report, (file) => path.resolve(file))
      if (Option.isSome(reportFile)) yield* ReportFile.write(reportFile.value, input)
      for (const s of result.skipped) yield* Effect.logWarning(`skipped ${s.file}: ${s.reason}`)
      yield* Console.log(
        flags.json
          ? JSON.stringify({ ...JsonReport.make(input), skipped: result.skipped, ...Option.match(reportFile, { onNone: () => ({}), onSome: (report) => ({ report }) }) })
          : TerminalReport.render(input, { color: TerminalReport.supportsColor(process.stdout) })
      )
      // stdout holds the report itself; where the file went is a note beside it.
      if (Option.isSome(reportFile)) yield* Console.error(`Report saved to ${reportFile.value}`)
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
)

const loupe = DocumentedCommand.group(
  "loupe",
  {
    summary: "train, evaluate and serve image classifiers",
    details: ["Logs and progress go to stderr; stdout carries results (one JSON object with --json)."],
    examples: ["loupe train ./photos --out ./pets-model", "loupe predict ./pets-model cat.jpg"]
  },
  [train, predict, evaluate, InspectCommand.command, ModelsCommand.command, FunctionCommand.command, ServeCommand.command, WorkerCommand.command, KeysCommand.command, ExportCommand.command]
)

const args = process.argv.slice(2)
const run = HelpText.isRequested(loupe.doc, args)
  ? Console.log(HelpText.render(HelpText.commandPath(loupe.doc, args), VERSION))
  : Command.run(loupe.command, { name: "loupe", version: VERSION })(process.argv)

/**
 * Typed failures become one clear line on stderr and exit code 1, instead of a stack trace; with `--json`, stdout
 * also carries them as exactly one JSON object (`{"error": {...}}`, see `Failure`).
 */
const reportFailure = (error: unknown) =>
  Effect.gen(function*() {
    const failure = Failure.toJson(error)
    if (ValidationError.isValidationError(error)) {
      // @effect/cli has already printed the usage problem.
      const names = HelpText.commandPath(loupe.doc, args).map((c) => c.name).join(" ")
      yield* Console.error(`Run \`${names} --help\` for usage.`)
    } else {
      yield* Console.error(Failure.toLine(failure))
    }
    if (Failure.wantsJson(args)) yield* Console.log(JSON.stringify({ error: failure }))
    process.exitCode = 1
  })

run.pipe(
  Effect.catchAll(reportFailure),
  // A defect is a bug: its stack goes to stderr, and a script reading `--json` output still gets its one object.
  Effect.catchAllDefect((defect) =>
    Effect.zipRight(Console.error(defect instanceof Error && defect.stack ? defect.stack : String(defect)), reportFailure(defect))
  ),
  Effect.provide(NodeContext.layer),
  // Logs go to stderr so stdout carries only results (one JSON object with --json).
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  Logger.withMinimumLogLevel(LogLevel.Info),
  // Keep our stderr logger: runMain would otherwise install its pretty logger, which writes to stdout.
  NodeRuntime.runMain({ disableErrorReporting: false, disablePrettyLogger: true })
)
