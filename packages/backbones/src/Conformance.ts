/**
 * The backbone conformance suite (scikit-learn's `check_estimator`, for backbones): run it over every registered
 * backbone, built-in or user-written, so a new backbone inherits the whole suite. For each backbone it checks:
 *
 * - `info`: the descriptive data is well formed (`runtime:name` id, or `hf:org/name` for a hub model, embedding
 *   size, preprocessing, tags, licence);
 * - `load`: it loads, with a positive `maxBatchSize` and a weights hash;
 * - `shape`: a batch of real images gives `count x embeddingSize` finite values, different for different images;
 * - `determinism`: the same batch twice gives the same values, and the input tensor is left unchanged;
 * - `batch-invariance`: each image's vector alone equals its vector inside the batch, within `tolerance`;
 * - `bad-input`: a batch tensor of the wrong length fails with a typed error (not a defect, not a result).
 *
 * A backbone whose weights are not available here (not downloaded, or offline) is reported `unavailable` rather
 * than failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Catalog, Conformance } from "@loupe/backbones"
 *
 * const reports = await Effect.runPromise(
 *   Conformance.run([...Catalog.builtins, myPlugin], { modelsDir: "../shared/models" }, { images: ["a.jpg", "b.jpg", "c.jpg"] })
 * )
 * console.log(Conformance.format(reports))
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { type Backbone, CoreError, LoupeConfig, Preprocess, Registry, type Sample } from "@loupe/core"

/**
 * What the conformance checks run with: the images to embed, per-backbone load options, and the tolerance for
 * vectors that should be equal.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConformanceOptions {
  /** Real images to embed: paths or bytes, at least 3, that differ from each other. */
  readonly images: ReadonlyArray<Sample.ImageSource>
  /** Options per backbone id, passed to `loadBackbone`. */
  readonly backboneOptions?: Readonly<Record<string, unknown>>
  /**
   * Largest difference allowed between two vectors that should be equal, relative to the vector's largest absolute
   * value (or absolute, when that is below 1). Default 1e-4.
   */
  readonly tolerance?: number
}

/**
 * The checks, in the order they run (the module doc says what each one asserts): `info`, `load`, `shape`,
 * `determinism`, `batch-invariance`, `bad-input`.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckName = "info" | "load" | "shape" | "determinism" | "batch-invariance" | "bad-input"

/**
 * The outcome of one check, with what it saw in words.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  readonly check: CheckName
  readonly ok: boolean
  readonly detail: string
}

/**
 * One backbone's conformance: `passed` when every check did, `unavailable` when it could not load because its
 * weights are not available here (not downloaded, or offline), else `failed`; with each check's result.
 *
 * @since 0.1.0
 * @category models
 */
export interface BackboneReport {
  readonly id: string
  readonly status: "passed" | "failed" | "unavailable"
  readonly checks: ReadonlyArray<CheckResult>
}

const ID = /^[a-z0-9][a-z0-9._-]*:[A-Za-z0-9][A-Za-z0-9._/-]*$/

const checkInfo = (info: Backbone.BackboneInfo): CheckResult => {
  const problems: Array<string> = []
  const p = info.preprocess
  if (!ID.test(info.id)) problems.push(`id "${info.id}" is not runtime:name`)
  else if (info.id.split(":")[0] !== info.runtime && !(info.id.startsWith("hf:") && info.weights._tag === "Hub")) {
    problems.push(`id "${info.id}" starts with neither runtime "${info.runtime}:" nor, for a hub model, "hf:"`)
  }
  if (!Number.isInteger(info.embeddingSize) || info.embeddingSize < 1) problems.push(`embeddingSize ${info.embeddingSize}`)
  if (!Number.isInteger(p.size) || p.size < 1) problems.push(`preprocess.size ${p.size}`)
  if (!(p.scale > 0)) problems.push(`preprocess.scale ${p.scale}`)
  if (p.mean.length !== 3 || !p.mean.every(Number.isFinite)) problems.push(`preprocess.mean [${p.mean}]`)
  if (p.std.length !== 3 || !p.std.every((s) => s > 0)) problems.push(`preprocess.std [${p.std}]`)
  if (info.tags.length === 0) problems.push("no tags (presets select backbones by tag)")
  if (info.license.trim() === "") problems.push("no licence")
  return problems.length === 0
    ? { check: "info", ok: true, detail: `${info.embeddingSize}-d, ${p.layout} ${p.size}x${p.size}, tags ${info.tags.join(", ")}` }
    : { check: "info", ok: false, detail: problems.join("; ") }
}

/** Largest |a - b| over `scale(a)` = max(1, max |a|). */
const relativeDifference = (a: Float32Array, b: Float32Array): number => {
  let diff = 0
  let scale = 1
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!))
    scale = Math.max(scale, Math.abs(a[i]!))
  }
  return diff / scale
}

const rowsEqual = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i])

/** A load failure that only means the weights are not here: not downloaded, or the hub is out of reach. */
const unavailable = (error: CoreError.CoreError): boolean => {
  const cause = error.cause as { readonly _tag?: unknown; readonly reason?: unknown } | undefined
  return cause?._tag === "BackboneError" && (cause.reason === "WeightsNotFound" || cause.reason === "Offline")
}

const runChecks = (loaded: Backbone.LoadedBackbone, options: ConformanceOptions) =>
  Effect.gen(function*() {
    const { info } = loaded
    const dim = info.embeddingSize
    const tolerance = options.tolerance ?? 1e-4
    const spec = info.preprocess
    const perImage = spec.size * spec.size * 3
    const checks: Array<CheckResult> = []

    const count = Math.min(options.images.length, loaded.maxBatchSize)
    const rgb = yield* Effect.forEach(options.images.slice(0, count), (image) => Preprocess.loadRgb(image, spec))
    const batch = Preprocess.toTensor(rgb, spec)
    const pristine = Float32Array.from(batch)
    const row = (values: Float32Array, i: number) => values.subarray(i * dim, (i + 1) * dim)

    const first = yield* Effect.either(loaded.embedBatch(batch, count))
    if (first._tag === "Left") {
      checks.push({ check: "shape", ok: false, detail: `embedBatch failed on ${count} real images: ${first.left.message}` })
      return checks
    }
    const out = first.right
    const finite = out.every(Number.isFinite)
    const distinct = new Set(Array.from({ length: count }, (_, i) => row(out, i).join())).size
    checks.push(
      out.length === count * dim && finite && distinct === count
        ? { check: "shape", ok: true, detail: `${count} images -> ${count} x ${dim} finite values, all rows different` }
        : {
          check: "shape",
          ok: false,
          detail: `${count} images -> ${out.length} values (expected ${count * dim}), ` +
            `${finite ? "all finite" : "some not finite"}, ${distinct} different rows`
        }
    )
    if (out.length !== count * dim) return checks

    const again = yield* Effect.either(loaded.embedBatch(batch, count))
    const unchanged = rowsEqual(batch, pristine)
    if (again._tag === "Left") {
      checks.push({ check: "determinism", ok: false, detail: `the second call failed: ${again.left.message}` })
    } else {
      const d = again.right.length === out.length ? relativeDifference(out, again.right) : Infinity
      checks.push({
        check: "determinism",
        ok: d <= tolerance && unchanged,
        detail: `max difference between two runs ${d.toExponential(2)}; input tensor ${unchanged ? "unchanged" : "MODIFIED"}`
      })
    }

    let worst = 0
    for (let i = 0; i < count; i++) {
      const alone = yield* Effect.either(loaded.embedBatch(pristine.slice(i * perImage, (i + 1) * perImage), 1))
      worst = Math.max(worst, alone._tag === "Left" || alone.right.length !== dim ? Infinity : relativeDifference(row(out, i), alone.right))
    }
    checks.push({
      check: "batch-invariance",
      ok: worst <= tolerance,
      detail: `max difference between an image alone and inside a batch of ${count}: ${worst.toExponential(2)} ` +
        `(tolerance ${tolerance})`
    })

    const bad = yield* Effect.exit(loaded.embedBatch(pristine.subarray(0, count * perImage - 1), count))
    checks.push(
      Exit.match(bad, {
        onSuccess: () => ({ check: "bad-input", ok: false, detail: "a tensor one value short was accepted" }),
        onFailure: (cause) => {
          const error = Option.getOrUndefined(Cause.failureOption(cause))
          return error !== undefined && typeof error._tag === "string" && error.message.length > 0
            ? { check: "bad-input", ok: true, detail: `${error._tag}: ${error.message}` }
            : { check: "bad-input", ok: false, detail: `not a typed failure: ${Cause.pretty(cause)}` }
        }
      })
    )
    return checks
  })

/**
 * Check one registered backbone.
 *
 * @since 0.1.0
 * @category checks
 */
export const check = (
  id: string,
  options: ConformanceOptions
): Effect.Effect<BackboneReport, CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.gen(function*() {
    if (options.images.length < 3) {
      return yield* new CoreError.CoreError({
        reason: "InvalidConfig",
        field: "images",
        message: `The conformance suite needs at least 3 different images, got ${options.images.length}`
      })
    }
    const registry = yield* Registry.Registry
    const plugin = yield* registry.backbone(id)
    const info = checkInfo(plugin.info)
    const loaded = yield* Effect.either(Registry.loadBackbone(id, options.backboneOptions?.[id] ?? {}))
    if (loaded._tag === "Left") {
      const load: CheckResult = { check: "load", ok: false, detail: loaded.left.message }
      return { id, status: unavailable(loaded.left) ? "unavailable" : "failed", checks: [info, load] } as const
    }
    const backbone = loaded.right
    const load: CheckResult = Number.isInteger(backbone.maxBatchSize) && backbone.maxBatchSize >= 1 && backbone.weightsHash !== ""
      ? { check: "load", ok: true, detail: `maxBatchSize ${backbone.maxBatchSize}, weights ${backbone.weightsHash.slice(0, 12)}` }
      : { check: "load", ok: false, detail: `maxBatchSize ${backbone.maxBatchSize}, weights hash "${backbone.weightsHash}"` }
    const checks = [info, load, ...(yield* runChecks(backbone, options))]
    return { id, status: checks.every((c) => c.ok) ? "passed" : "failed", checks } as const
  }).pipe(Effect.scoped)

/**
 * Check every backbone in the registry, one after another (each is released before the next loads).
 *
 * @since 0.1.0
 * @category checks
 */
export const checkAll = (
  options: ConformanceOptions
): Effect.Effect<ReadonlyArray<BackboneReport>, CoreError.CoreError, Registry.Registry | LoupeConfig.LoupeConfig> =>
  Effect.flatMap(Registry.Registry, (registry) => Effect.forEach(registry.backbones, (p) => check(p.info.id, options)))

/**
 * Check a list of plugins under a given configuration (a duplicate id is an error).
 *
 * @since 0.1.0
 * @category checks
 */
export const run = (
  plugins: ReadonlyArray<Backbone.BackbonePlugin>,
  config: Partial<LoupeConfig.LoupeConfigShape>,
  options: ConformanceOptions
): Effect.Effect<ReadonlyArray<BackboneReport>, CoreError.CoreError> =>
  checkAll(options).pipe(
    Effect.provide(Layer.mergeAll(Registry.Registry.layer({ backbones: plugins }), LoupeConfig.LoupeConfig.layer(config)))
  )

/**
 * A plain-text table of reports, one line per check.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (reports: ReadonlyArray<BackboneReport>): string =>
  reports
    .map((r) =>
      [`${r.id}: ${r.status}`, ...r.checks.map((c) => `  ${c.ok ? "ok  " : "FAIL"} ${c.check.padEnd(16)} ${c.detail}`)].join("\n")
    )
    .join("\n")
