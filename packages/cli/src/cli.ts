#!/usr/bin/env node
/**
 * The `loupe` command line.
 *
 * @since 0.1.0
 */
import { Args, Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Option } from "effect"
import { JsonReport, TerminalReport } from "@loupe/metrics"
import type { Report } from "@loupe/metrics"
import * as Evaluate from "./Evaluate.js"
import * as ExportCommand from "./ExportCommand.js"
import * as FunctionCommand from "./FunctionCommand.js"
import * as KeysCommand from "./KeysCommand.js"
import { environment, json, modelsDir, overrides, parseOverrides, plugins, preset } from "./internal/cliOptions.js"
import * as ModelsCommand from "./ModelsCommand.js"
import * as Predict from "./Predict.js"
import { Preset } from "@loupe/functions"
import * as ReportFile from "./ReportFile.js"
import * as ServeCommand from "./ServeCommand.js"
import * as Train from "./Train.js"
import * as TrainSummary from "./TrainSummary.js"

const train = Command.make(
  "train",
  {
    dir: Args.directory({ name: "dir", exists: "yes" }),
    out: Options.text("out").pipe(Options.withDescription("Bundle directory to write"), Options.withDefault("loupe-model")),
    preset: preset("fast"),
    overrides,
    backbone: Options.text("backbone").pipe(
      Options.withDescription("Backbone id to use (repeatable); overrides the preset's choice"),
      Options.repeated
    ),
    folds: Options.integer("folds").pipe(Options.withDescription("Cross-validation folds (overrides the preset)"), Options.optional),
    seed: Options.integer("seed").pipe(Options.optional),
    report: Options.file("report").pipe(Options.withDescription("Also write an .html or .json report"), Options.optional),
    modelsDir,
    plugins,
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
      const resolved = yield* Preset.resolve(flags.preset, user === undefined || isObject ? { ...user as object, ...fromFlags } : user)
      const result = yield* Train.train({
        dir: flags.dir,
        out: flags.out,
        ...(yield* Preset.fitOptions(resolved)),
        ...Option.match(flags.report, { onNone: () => ({}), onSome: (report) => ({ report }) })
      })
      yield* Console.log(flags.json ? JSON.stringify(TrainSummary.toJson(result)) : TrainSummary.toText(result))
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
).pipe(Command.withDescription("Train a classifier on a folder of labelled images with an AutoML preset and save a bundle"))

const predict = Command.make(
  "predict",
  {
    bundle: Args.directory({ name: "bundle", exists: "yes" }),
    images: Args.file({ name: "image" }).pipe(Args.atLeast(1)),
    modelsDir,
    plugins,
    json
  },
  (flags) =>
    Effect.gen(function*() {
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
).pipe(Command.withDescription("Predict the label of each image with a saved bundle"))

const evaluate = Command.make(
  "evaluate",
  {
    bundle: Args.directory({ name: "bundle", exists: "yes" }),
    dir: Args.directory({ name: "dir", exists: "yes" }),
    report: Options.file("report").pipe(Options.withDescription("Also write an .html or .json report"), Options.optional),
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
      if (Option.isSome(flags.report)) yield* ReportFile.write(flags.report.value, input)
      for (const s of result.skipped) yield* Effect.logWarning(`skipped ${s.file}: ${s.reason}`)
      yield* Console.log(
        flags.json ? JSON.stringify({ ...JsonReport.make(input), skipped: result.skipped }) : TerminalReport.render(input, { color: TerminalReport.supportsColor(process.stdout) })
      )
    }).pipe(Effect.scoped, Effect.provide(environment(flags)))
).pipe(Command.withDescription("Evaluate a saved bundle on a folder of labelled images"))

const loupe = Command.make("loupe").pipe(Command.withSubcommands([train, predict, evaluate, ModelsCommand.command, FunctionCommand.command, ServeCommand.command, KeysCommand.command, ExportCommand.command]))

const run = Command.run(loupe, { name: "loupe", version: "0.1.0" })

/** Typed failures become one clear line on stderr and exit code 1, instead of a stack trace. */
const reportFailure = (error: unknown) =>
  Effect.gen(function*() {
    if (ValidationError.isValidationError(error)) {
      // @effect/cli has already printed the usage problem.
    } else if (typeof error === "object" && error !== null && "message" in error) {
      const e = error as { readonly _tag?: string; readonly reason?: string; readonly message: string }
      yield* Console.error(`loupe: ${e.message}${e.reason ? ` [${e._tag ?? "Error"}: ${e.reason}]` : ""}`)
    } else {
      yield* Console.error(`loupe: ${String(error)}`)
    }
    process.exitCode = 1
  })

run(process.argv).pipe(
  Effect.catchAll(reportFailure),
  Effect.provide(NodeContext.layer),
  // Logs go to stderr so stdout carries only results (one JSON object with --json).
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  Logger.withMinimumLogLevel(LogLevel.Info),
  // Keep our stderr logger: runMain would otherwise install its pretty logger, which writes to stdout.
  NodeRuntime.runMain({ disableErrorReporting: false, disablePrettyLogger: true })
)
