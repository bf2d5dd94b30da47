/**
 * The preprocessing a Hugging Face image model declares in its `preprocessor_config.json`, as Loupe's
 * `PreprocessSpec` (the transformers.js plugin preprocesses with sharp, not with transformers.js).
 */
import { Effect } from "effect"
import type { Preprocess } from "@loupe/core"
import { BackboneError } from "../BackboneError.js"

const triple = (value: unknown, fallback: number, field: string, file: string): [number, number, number] => {
  const v = value === undefined ? fallback : value
  if (typeof v === "number") return [v, v, v]
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number")) return [v[0], v[1], v[2]]
  throw new Error(`${file}: ${field} must be a number or three numbers, got ${JSON.stringify(value)}`)
}

/**
 * A side length from a `size`/`crop_size` value: `{height, width}`, `{shortest_edge}`, or a bare number (older
 * configs), which Hugging Face reads as the shortest edge when a crop follows and as a square otherwise.
 */
const sideOf = (
  value: unknown,
  field: string,
  file: string,
  bare: "square" | "shortest"
): { side: number; exact: "square" | "shortest" } => {
  if (typeof value === "number") return { side: value, exact: bare }
  const v = (value ?? {}) as { height?: unknown; width?: unknown; shortest_edge?: unknown }
  if (typeof v.height === "number" && typeof v.width === "number") {
    if (v.height !== v.width) throw new Error(`${file}: ${field} is ${v.height}x${v.width}; only square inputs are supported`)
    return { side: v.height, exact: "square" }
  }
  if (typeof v.shortest_edge === "number") return { side: v.shortest_edge, exact: "shortest" }
  throw new Error(`${file}: ${field} must be a number, {height, width} or {shortest_edge}, got ${JSON.stringify(value)}`)
}

/**
 * The `PreprocessSpec` a model's `preprocessor_config.json` describes: `size` / `crop_size`, `do_resize`,
 * `do_center_crop`, `do_rescale` / `rescale_factor`, `do_normalize` / `image_mean` / `image_std`. The input is square
 * and NCHW. Resizing a square `{height, width}` before a smaller centre crop keeps the aspect ratio here (a Hugging
 * Face processor squashes first); that approximation is logged as a warning.
 */
export const preprocessFromConfig = (
  json: Record<string, unknown>,
  file = "preprocessor_config.json"
): Effect.Effect<Preprocess.PreprocessSpec, BackboneError> =>
  Effect.gen(function*() {
    const parsed = yield* Effect.try({
      try: () => {
        const doResize = json["do_resize"] !== false
        const doCrop = json["do_center_crop"] === true
        const resize = json["size"] === undefined ? undefined : sideOf(json["size"], "size", file, doCrop ? "shortest" : "square")
        const crop = doCrop ? sideOf(json["crop_size"] ?? json["size"], "crop_size", file, "square") : undefined
        const size = crop?.side ?? resize?.side
        if (size === undefined) throw new Error(`${file} gives neither size nor crop_size`)
        const doNormalize = json["do_normalize"] !== false
        const rescale = json["do_rescale"] === false ? 1 : json["rescale_factor"] ?? 1 / 255
        if (typeof rescale !== "number" || rescale <= 0) throw new Error(`${file}: rescale_factor must be a positive number`)
        const approximate = doResize && crop !== undefined && resize?.exact === "square" && resize.side > crop.side
        const spec: Preprocess.PreprocessSpec = doResize && resize !== undefined && resize.exact === "square" && !approximate
          ? { size, resize: "squash", layout: "NCHW", scale: 1 / rescale, mean: [0, 0, 0], std: [1, 1, 1] }
          : {
            size,
            resize: "shorter-side-center-crop",
            resizeShorter: doResize && resize !== undefined ? Math.max(resize.side, size) : size,
            layout: "NCHW",
            scale: 1 / rescale,
            mean: [0, 0, 0],
            std: [1, 1, 1]
          }
        return {
          approximate,
          spec: doNormalize
            ? { ...spec, mean: triple(json["image_mean"], 0.5, "image_mean", file), std: triple(json["image_std"], 0.5, "image_std", file) }
            : spec
        }
      },
      catch: (cause) =>
        new BackboneError({ reason: "LoadFailed", file, message: cause instanceof Error ? cause.message : String(cause), cause })
    })
    if (parsed.approximate) {
      yield* Effect.logWarning(
        `${file}: resize to ${parsed.spec.resizeShorter} x ${parsed.spec.resizeShorter} then crop ${parsed.spec.size}; ` +
          "Loupe keeps the aspect ratio when resizing"
      )
    }
    return parsed.spec
  })
