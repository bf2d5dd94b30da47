/**
 * `loupe function create|add|invoke|metrics|list|labels|models|rollback`: the function API from the command line, on a store
 * (`--store`: a folder or a `postgres://` URL; default `$LOUPE_STORE_URL`, `$LOUPE_STORE_DIR` or `~/.local/share/loupe`).
 *
 * A command line process lives only as long as its command, so `add` waits for the retrain it causes (and any
 * retrain left over from an earlier interrupted run) before it exits; `--no-wait` leaves it to the next `add`. On a
 * Postgres store the retrain is not run in this process: it is submitted as a job (`RetrainWorkflow`) for the
 * `loupe worker` runners, as `loupe serve` submits it, and the command waits for a worker to finish it, at most
 * `--wait-timeout` seconds; with `--no-wait` it returns once the job is submitted.
 *
 * @since 0.1.0
 */
import { FileSystem } from "@effect/platform"
import { Console, Duration, Effect, Either, Layer, Option, pipe, Schedule } from "effect"
import { Dataset } from "@loupe/core"
// Named so the declaration emitter can refer to the error types in this module's inferred command type.
import type { CoreError as _CoreError } from "@loupe/core"
import * as os from "node:os"
import * as path from "node:path"
import { Functions, FunctionsError, Preset, RetrainWorkflow, StoreLocation } from "@loupe/functions"
import type { Retrainer, Store } from "@loupe/functions"
import * as Arg from "./internal/Arg.js"
import { environment, json, modelsDir, offline, overrides, parseOverrides, plugins, preset, presetsHelp } from "./internal/cliOptions.js"
import * as DocumentedCommand from "./internal/DocumentedCommand.js"
import * as Flag from "./internal/Flag.js"

/** The store folder when neither `--store` nor `$LOUPE_STORE_DIR` names one: `$XDG_DATA_HOME/loupe` or `~/.local/share/loupe`. */
export const defaultStoreDir = (): string =>
  path.join(process.env["XDG_DATA_HOME"] ?? path.join(os.homedir(), ".local", "share"), "loupe")

/**
 * `--store`: the function store, shared by the commands that work on one: a folder, or a `postgres://` URL; when
 * not given, `$LOUPE_STORE_URL`, else `$LOUPE_STORE_DIR`, else `defaultStoreDir()`. Any other `scheme:` is an error
 * naming it (`StoreLocation.parse`), never a folder.
 */
export const store = pipe(
  Flag.text(
    "store",
    "<dir|url>",
    "The function store: a folder (functions, samples, models and API keys), or a postgres:// URL that several processes share"
  ),
  Flag.optional(`$LOUPE_STORE_URL, else $LOUPE_STORE_DIR, else ${defaultStoreDir()}`),
  Flag.mapEither((given: Option.Option<string>) =>
    Either.mapLeft(
      Option.match(given, {
        onSome: (text) => StoreLocation.parse(text, "--store"),
        onNone: () => StoreLocation.fromEnv() ?? Either.right(StoreLocation.directory(defaultStoreDir()))
      }),
      (error) => error.message
    )
  )
)

const functionId = Arg.text("function-id", "The function's id, as `loupe function create` printed it")

const percent = (x: number) => `${(100 * x).toFixed(1)} %`

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "))
    .join("\n")
}

/** The metrics of a function's model, as text. */
export const metricsText = (m: Functions.FunctionMetrics): string => {
  const { cv } = m
  const lines = [
    `model ${m.modelId} (${m.createdAt}${m.upToDate ? "" : ", data changed since"}), preset ${m.preset.name} v${m.preset.version}`,
    `cross-validation (${cv.folds} folds, ${cv.total} samples): accuracy ${percent(cv.accuracy)} (${cv.correct}/${cv.total}), ` +
    `macro-F1 ${cv.macroF1.toFixed(3)}, log loss ${cv.logLoss.toFixed(3)}`,
    "",
    table([
      ["label", "accuracy", "precision", "recall", "f1", "support"],
      ...cv.perClass.map((c) => [
        c.labelName,
        percent(c.accuracy),
        c.precision.toFixed(3),
        c.recall.toFixed(3),
        c.f1.toFixed(3),
        String(c.support)
      ])
    ]),
    "",
    "confusion matrix (rows: true label, columns: predicted)",
    table([["", ...cv.labels], ...cv.confusionMatrix.map((row, t) => [cv.labels[t]!, ...row.map(String)])]),
    "",
    `selected: ${JSON.stringify(m.selected)}`
  ]
  if (m.skipped.length > 0) lines.push(`skipped ${m.skipped.length} unreadable images`)
  if (m.leftOutLabels.length > 0) lines.push(`left out: ${leftOutText(m.leftOutLabels)}`)
  return lines.join("\n")
}

/** Labels left out of training, with why, as text. */
const leftOutText = (labels: Functions.FunctionStatus["leftOutLabels"]): string =>
  labels.map((l) => `${l.name} (${l.reason})`).join(", ")

/** A function's status, as one line. */
export const statusText = (s: Functions.FunctionStatus): string => {
  const samples = s.labels.map((l) => `${l.name}: ${l.sampleCount}`).join(", ") || "no labels"
  const model = s.model
    ? `model ${s.model.id}, CV accuracy ${percent(s.model.cvAccuracy)}${s.model.upToDate ? "" : " (data changed since)"}`
    : `not trained${s.trainError ? `: ${s.trainError}` : ""}`
  const training = s.training.phase === "idle" ? "" : `, ${s.training.phase}`
  const heldBack = s.heldBack === null ? "" : `; newer model ${s.heldBack.id} held back: ${s.heldBack.reason}`
  const leftOut = s.leftOutLabels.length === 0 ? "" : `\tleft out: ${leftOutText(s.leftOutLabels)}`
  return `${s.id}\t${s.name}\t${s.preset}\t${samples}\t${model}${training}${heldBack}${leftOut}`
}

/** The samples `add` posts: folders are read as a folder per label; files get `--label`. */
const collect = (paths: ReadonlyArray<string>, label: Option.Option<string>) =>
  Effect.gen(function*() {
    const items: Array<{ readonly file: string; readonly label: string | undefined }> = []
    const skipped: Array<{ readonly file: string; readonly reason: string }> = []
    const fs = yield* FileSystem.FileSystem
    for (const p of paths) {
      const isDir = yield* fs.stat(p).pipe(
        Effect.map((s) => s.type === "Directory"),
        Effect.orElseSucceed(() => false)
      )
      if (isDir) {
        const dataset = yield* Dataset.fromFolder(p)
        for (const s of dataset.samples) items.push({ file: s.source as string, label: s.label ?? Option.getOrUndefined(label) })
        skipped.push(...dataset.skipped)
      } else {
        items.push({ file: p, label: Option.getOrUndefined(label) })
      }
    }
    return { items, skipped }
  })

const common = { store, modelsDir, plugins, offline, json }
type Common = DocumentedCommand.Parsed<typeof common>

/**
 * Run `effect` with the function API on the store. Commands that train (`config` without `resumeOnStart: false`)
 * submit their retrains to the workers on a Postgres store, as `loupe serve` does; a folder store trains here.
 */
const withFunctions = <A, E>(
  flags: Common,
  config: Functions.FunctionsConfig,
  effect: Effect.Effect<A, E, Functions.Functions | FileSystem.FileSystem>
) =>
  effect.pipe(
    Effect.provide(
      Functions.layerStore(flags.store, config).pipe(
        Layer.provide(config.resumeOnStart === false ? Layer.empty : RetrainWorkflow.layerJobsFor(flags.store))
      )
    ),
    Effect.provide(environment(flags))
  )

/** Commands that only read or write records never start training; `add` does. */
const quiet: Functions.FunctionsConfig = { resumeOnStart: false }

/** How often the wait for a worker says it still waits. */
const progressEvery = Duration.seconds(10)

/**
 * `--wait-timeout`: how long `add` and `labels rm` wait for a worker to finish the retrain on a Postgres store.
 */
const waitTimeout = pipe(
  Flag.integer(
    "wait-timeout",
    "<seconds>",
    "On a postgres:// store, how long to wait for a `loupe worker` to finish the retrain; past it the command fails " +
      "and the job stays submitted for the workers"
  ),
  Flag.withDefault(600),
  Flag.mapEither((seconds: number) =>
    seconds >= 1 ? Either.right(seconds) : Either.left(`--wait-timeout ${seconds}: give at least 1 second`)
  )
)

/**
 * Wait for the function's retrain (`awaitTrained`). On a Postgres store the retrain is a job for the workers: say
 * so on stderr, say every `progressEvery` that it still waits, and fail with `TrainingFailed` naming
 * `--wait-timeout` when no worker has finished it within `timeoutSeconds` (the job itself stays submitted).
 */
const awaitRetrain = (store: StoreLocation.StoreLocation, functionId: string, timeoutSeconds: number) =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    if (store._tag === "Directory") return yield* functions.awaitTrained(functionId)
    const shown = StoreLocation.describe(store)
    yield* Console.error(
      `retrain of ${functionId} submitted as a job; waiting for a worker (\`loupe worker --store ${shown}\`)`
    )
    const started = Date.now()
    const progress = Effect.suspend(() =>
      Console.error(`waiting for a worker to retrain ${functionId}: ${Math.round((Date.now() - started) / 1000)} s`)
    ).pipe(Effect.delay(progressEvery), Effect.repeat(Schedule.spaced(progressEvery)))
    const status = yield* functions.awaitTrained(functionId).pipe(
      Effect.raceFirst(Effect.zipRight(progress, Effect.never)),
      Effect.timeoutFail({
        duration: Duration.seconds(timeoutSeconds),
        onTimeout: () =>
          new FunctionsError.FunctionsError({
            reason: "TrainingFailed",
            field: "wait-timeout",
            message: `No worker finished the retrain of ${functionId} within ${timeoutSeconds} s (--wait-timeout): is a ` +
              `\`loupe worker --store ${shown}\` running? The job stays submitted; a worker runs it when one starts, ` +
              `and \`loupe function list\` shows the model once it has.`
          })
      })
    )
    yield* Console.error(`retrain finished on a worker after ${Math.round((Date.now() - started) / 1000)} s`)
    return status
  })

/**
 * `--no-wait`: on a Postgres store, submit the retrain to the workers before exiting (a folder store's retrain runs
 * in this process, so it is left to the next `add`); then the function's status.
 */
const submitRetrain = (store: StoreLocation.StoreLocation, functionId: string) =>
  Effect.gen(function*() {
    const functions = yield* Functions.Functions
    if (store._tag !== "Directory") {
      yield* functions.submitRetrain(functionId)
      yield* Console.error(`retrain of ${functionId} submitted as a job for the workers (\`loupe worker --store ${StoreLocation.describe(store)}\`)`)
    }
    return yield* functions.get(functionId)
  })

const create = DocumentedCommand.make(
  "create",
  {
    summary: "Create a function (a classifier that trains itself as samples arrive) and print its id",
    details: [presetsHelp],
    examples: ["loupe function create pets --preset fast --store ./store"]
  },
  {
    ...common,
    name: Arg.text("name", "A name for people; the printed id is what other commands take"),
    preset: preset(Preset.defaultPreset),
    overrides
  },
  (flags) =>
    withFunctions(
      flags,
      quiet,
      Effect.gen(function*() {
        const overrides = yield* parseOverrides(flags.overrides)
        const functions = yield* Functions.Functions
        const fn = yield* functions.create(flags.name, { preset: flags.preset, overrides })
        yield* Console.log(flags.json ? JSON.stringify(fn) : fn.id)
      })
    )
)

const add = DocumentedCommand.make(
  "add",
  {
    summary: "Add images as samples, then wait for the retrain they cause",
    details: [
      "A folder is read as a subfolder per label; image files take --label, or stay unlabelled without it. " +
      "Unreadable images are reported on stderr and left out."
    ],
    examples: ["loupe function add function_3fa94c0e21b7d5a86c10 ./photos --store ./store", "loupe function add function_3fa94c0e21b7d5a86c10 cat.jpg --label cats"]
  },
  {
    ...common,
    functionId,
    paths: Arg.atLeastOne(Arg.path("path", "A folder of labelled photos, or an image file", { exists: "yes" })),
    label: pipe(Flag.text("label", "<label>", "The label of the image files given (not of folders)"), Flag.optional()),
    noWait: Flag.boolean(
      "no-wait",
      "Return at once, without waiting for the retrain: on a postgres:// store it is submitted to the workers; on a " +
        "folder the next `add` (or `loupe serve`) runs it"
    ),
    waitTimeout
  },
  (flags) =>
    withFunctions(
      flags,
      { debounce: 0 },
      Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const { items, skipped } = yield* collect(flags.paths, flags.label)
        // Check each image first, so one unreadable file is reported and left out instead of failing the batch.
        const checked = yield* Effect.forEach(
          items,
          (item) =>
            Functions.readImage(item.file, item.file).pipe(
              Effect.map((data) => ({ data, label: item.label, file: item.file })),
              Effect.catchTag("FunctionsError", (e) => Effect.as(Effect.sync(() => skipped.push({ file: item.file, reason: e.message })), undefined))
            ),
          { concurrency: 4 }
        )
        const good = checked.filter((c) => c !== undefined)
        const added = yield* functions.createSamples(
          flags.functionId,
          good.map((c) => (c.label === undefined ? { data: c.data } : { data: c.data, label: c.label }))
        )
        const ids = added.map((a) => a.sample.id)
        // A photo the function already held took this run's label: say so, file by file.
        const relabelled = added.flatMap((a, i) => (a.updated.includes("annotation") ? [{ file: good[i]!.file, label: good[i]!.label }] : []))
        for (const s of skipped) yield* Console.error(`skipped ${s.file}: ${s.reason}`)
        for (const r of relabelled) yield* Console.error(`relabelled ${r.file}: the function already held this image; now ${r.label}`)
        const status = flags.noWait
          ? yield* submitRetrain(flags.store, flags.functionId)
          : yield* awaitRetrain(flags.store, flags.functionId, flags.waitTimeout)
        if (flags.json) {
          yield* Console.log(JSON.stringify({ sampleIds: ids, skipped, relabelled, status }))
        } else {
          yield* Console.log(
            `added ${ids.length} samples (${new Set(ids).size} distinct, ${relabelled.length} relabelled), skipped ${skipped.length}`
          )
          yield* Console.log(statusText(status))
        }
      })
    )
)

const invoke = DocumentedCommand.make(
  "invoke",
  {
    summary: "Classify images with a function's current model",
    details: ["Prints a line per image: the file, the predicted label and its probability (or why it could not be read)."],
    examples: ["loupe function invoke function_3fa94c0e21b7d5a86c10 cat.jpg --store ./store"]
  },
  { ...common, functionId, images: Arg.atLeastOne(Arg.file("image", "An image file", { exists: "yes" })) },
  (flags) =>
    withFunctions(
      flags,
      quiet,
      Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const results = yield* Effect.forEach(flags.images, (file) =>
          functions.invoke(flags.functionId, file).pipe(
            Effect.map((result) => ({ file, ...result })),
            Effect.catchIf((e) => e.reason === "InvalidImage", (e) => Effect.succeed({ file, error: e.message }))
          ))
        if (flags.json) {
          yield* Console.log(JSON.stringify({ predictions: results }))
          return
        }
        for (const r of results) {
          yield* Console.log("error" in r ? `${r.file}\terror: ${r.error}` : `${r.file}\t${r.labelName}\t${r.confidence.toFixed(4)}`)
        }
      })
    )
)

const metrics = DocumentedCommand.make(
  "metrics",
  {
    summary: "Show the cross-validated accuracy, per-label scores and confusion matrix of a function's model",
    examples: ["loupe function metrics function_3fa94c0e21b7d5a86c10 --store ./store"]
  },
  { ...common, functionId },
  (flags) =>
  withFunctions(
    flags,
    quiet,
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const m = yield* functions.metrics(flags.functionId)
      yield* Console.log(flags.json ? JSON.stringify(m) : metricsText(m))
    })
  )
)

const list = DocumentedCommand.make(
  "list",
  {
    summary: "List the store's functions: labels and sample counts, model accuracy, training state",
    examples: ["loupe function list --store ./store"]
  },
  common,
  (flags) =>
  withFunctions(
    flags,
    quiet,
    Effect.gen(function*() {
      const functions = yield* Functions.Functions
      const all = yield* Effect.flatMap(functions.list, Effect.forEach((f) => functions.get(f.id)))
      if (flags.json) yield* Console.log(JSON.stringify({ functions: all }))
      else for (const s of all) yield* Console.log(statusText(s))
    })
  )
)

/** A function's model versions, newest first, as a table: which serves, and why a newer one was held back. */
export const modelsText = (versions: ReadonlyArray<Store.ModelVersionRecord>): string => {
  const rows = versions.map((v) => {
    const cv = (v.metrics as Partial<Retrainer.ModelMetrics>).cv
    const se = cv?.macroF1StandardError
    return [
      v.id,
      v.createdAt,
      String(v.sampleCount),
      cv === undefined ? "-" : `${cv.macroF1.toFixed(3)}${se === undefined ? "" : ` ± ${se.toFixed(3)}`}`,
      cv === undefined ? "-" : percent(cv.accuracy),
      v.promoted ? "serving" : ""
    ]
  })
  const notes = versions.flatMap((v) => (v.heldBack === null ? [] : [`${v.id} held back: ${v.heldBack}`]))
  return [table([["model", "trained", "samples", "macro-F1 ± SE", "accuracy", ""], ...rows]), ...notes].join("\n")
}

const models = DocumentedCommand.make(
  "models",
  {
    summary: "List a function's model versions: when each trained, on how many samples, its CV scores, which serves",
    details: [
      "Newest first. A version the promotion rule held back says why. A function keeps its newest `keepVersions` " +
      "versions (an override, default 10) and the serving one."
    ],
    examples: ["loupe function models function_3fa94c0e21b7d5a86c10 --store ./store"]
  },
  { ...common, functionId },
  (flags) =>
    withFunctions(
      flags,
      quiet,
      Effect.gen(function*() {
        const versions = yield* (yield* Functions.Functions).models(flags.functionId)
        yield* Console.log(flags.json ? JSON.stringify({ models: versions }) : modelsText(versions))
      })
    )
)

const rollback = DocumentedCommand.make(
  "rollback",
  {
    summary: "Serve another model version: by default the one before the serving one, or --model ID",
    details: [
      "Takes effect from the next invocation on, in `loupe serve` processes on the same store too (no restart). " +
      "`--model` may name any listed version, also a newer one the promotion rule held back. The next retrain is " +
      "promoted by the function's rule as usual."
    ],
    examples: [
      "loupe function rollback function_3fa94c0e21b7d5a86c10 --store ./store",
      "loupe function rollback function_3fa94c0e21b7d5a86c10 --model model_1c9e0f5a7b3d2e48a6f0"
    ]
  },
  {
    ...common,
    functionId,
    model: pipe(Flag.text("model", "<model-id>", "The version to serve, as `loupe function models` lists it"), Flag.optional())
  },
  (flags) =>
    withFunctions(
      flags,
      quiet,
      Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const target = yield* Option.match(flags.model, {
          onSome: Effect.succeed,
          onNone: () =>
            Effect.flatMap(functions.models(flags.functionId), (versions) => {
              const serving = versions.findIndex((v) => v.promoted)
              const previous = serving < 0 ? undefined : versions[serving + 1]
              return previous === undefined
                ? Effect.fail(
                  new FunctionsError.FunctionsError({
                    reason: "NotFound",
                    field: "--model",
                    message: serving < 0
                      ? `Function ${flags.functionId} has no serving model to roll back from`
                      : `Function ${flags.functionId} has no version older than the serving one (${versions[serving]!.id}); name one with --model`
                  })
                )
                : Effect.succeed(previous.id)
            })
        })
        const promoted = yield* functions.rollback(flags.functionId, target)
        yield* Console.log(flags.json ? JSON.stringify(promoted) : `serving ${promoted.id} (trained ${promoted.createdAt} on ${promoted.sampleCount} samples)`)
      })
    )
)

const labelsList = DocumentedCommand.make(
  "list",
  {
    summary: "List a function's labels: id, name, annotated samples, and whether training leaves the label out",
    examples: ["loupe function labels list function_3fa94c0e21b7d5a86c10 --store ./store"]
  },
  { ...common, functionId },
  (flags) =>
    withFunctions(
      flags,
      quiet,
      Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const status = yield* functions.get(flags.functionId)
        const reasons = new Map(status.leftOutLabels.map((l) => [l.id, l.reason]))
        const labels = status.labels.map((l) => ({ ...l, leftOut: reasons.get(l.id) ?? null }))
        if (flags.json) return yield* Console.log(JSON.stringify({ labels }))
        for (const l of labels) {
          yield* Console.log(`${l.id}\t${l.name}\t${l.sampleCount}${l.leftOut === null ? "" : `\tleft out: ${l.leftOut}`}`)
        }
      })
    )
)

const labelsRemove = DocumentedCommand.make(
  "rm",
  {
    summary: "Delete a label; its samples are kept, unlabelled (a retrain follows when there were any)",
    details: ["The label is given by id or by name. Its samples stay in the function without an annotation."],
    examples: ["loupe function labels rm function_3fa94c0e21b7d5a86c10 birds --store ./store"]
  },
  { ...common, functionId, label: Arg.text("label", "The label's id or name, as `loupe function labels list` shows it"), waitTimeout },
  (flags) =>
    withFunctions(
      flags,
      { debounce: 0 },
      Effect.gen(function*() {
        const functions = yield* Functions.Functions
        const labels = yield* functions.listLabels(flags.functionId)
        const label = labels.find((l) => l.id === flags.label) ?? labels.find((l) => l.name === flags.label)
        const deleted = yield* functions.deleteLabel(flags.functionId, label?.id ?? flags.label)
        // The retrain it causes finishes before the command exits (as with `add`).
        const status = yield* awaitRetrain(flags.store, flags.functionId, flags.waitTimeout)
        if (flags.json) return yield* Console.log(JSON.stringify({ ...deleted, status }))
        yield* Console.log(`deleted label ${deleted.label.name} (${deleted.label.id}); ${deleted.unannotatedSamples} samples are now unlabelled`)
        yield* Console.log(statusText(status))
      })
    )
)

const labels = DocumentedCommand.group(
  "labels",
  {
    summary: "List a function's labels, or delete one (its samples stay, unlabelled)",
    examples: ["loupe function labels list function_3fa94c0e21b7d5a86c10 --store ./store"]
  },
  [labelsList, labelsRemove]
)

/** `loupe function create|add|invoke|metrics|list|labels|models|rollback`. */
export const command = DocumentedCommand.group(
  "function",
  {
    summary: "Classifiers that train themselves: create one, add samples, invoke it, read its metrics, steer its versions",
    examples: ["loupe function create pets --store ./store"]
  },
  [create, add, invoke, metrics, list, labels, models, rollback]
)
