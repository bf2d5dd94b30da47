/**
 * The `--out` folder of `train` and `export`, checked before any work, so a run of minutes does not end in a
 * refusal: it must be new or empty, or with `--overwrite` an earlier Loupe output of the same kind (see
 * `OutputFolder` in `@loupe/core`, which also guards the write itself). Nothing else is ever replaced, with or
 * without the flag.
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import { CoreError, OutputFolder } from "@loupe/core"

/** The refusal, naming the `out` option as well as the folder. */
const onOut = (e: CoreError.CoreError, message = e.message) =>
  new CoreError.CoreError({
    reason: e.reason,
    field: "out",
    message,
    ...(e.file === undefined ? {} : { file: e.file }),
    ...(e.cause === undefined ? {} : { cause: e.cause })
  })

/**
 * Fails with `CoreError` (field `out`) unless `dir` may receive an output of `kind`: `OutputNotFree` when it holds
 * anything but an earlier output of that kind, or one of those without `overwrite`.
 */
export const checkFree = (
  dir: string,
  kind: string,
  overwrite: boolean
): Effect.Effect<void, CoreError.CoreError, FileSystem.FileSystem> =>
  OutputFolder.check(dir, kind).pipe(
    Effect.mapError((e) => onOut(e)),
    Effect.filterOrFail(
      (state) => state !== "earlier" || overwrite,
      () =>
        onOut(new CoreError.CoreError({
          reason: "OutputNotFree",
          file: dir,
          message: `${dir} holds an earlier ${kind} output: replace it with --overwrite, or choose another --out`
        }))
    ),
    Effect.asVoid
  )
