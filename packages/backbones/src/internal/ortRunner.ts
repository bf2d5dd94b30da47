/**
 * The onnxruntime worker's module (built as `dist/ortRunner.js`, started by `ortWorker.ts`): one session, created
 * by `Load` and released when the worker closes.
 */
import * as WorkerRunner from "@effect/platform/WorkerRunner"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeWorkerRunner from "@effect/platform-node/NodeWorkerRunner"
import { Context, Effect, Layer } from "effect"
import * as Ort from "onnxruntime-node"
import { sessionOptions } from "./ortEmbed.js"
import { OrtRequest, type OutputTensor } from "./ortProtocol.js"
import { EngineFailure } from "./workerProtocol.js"

class Session extends Context.Tag("@loupe/backbones/ortRunner/Session")<Session, Ort.InferenceSession>() {}

const engineFailure = (cause: unknown) => new EngineFailure({ message: cause instanceof Error ? cause.message : String(cause) })

WorkerRunner.layerSerialized(OrtRequest, {
  InitialMessage: ({ intraOpNumThreads, model, spinning }) =>
    Layer.scoped(
      Session,
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => Ort.InferenceSession.create(model, sessionOptions({ intraOpNumThreads, spinning })),
          catch: engineFailure
        }),
        (session) => Effect.promise(() => session.release())
      )
    ),
  Describe: () => Effect.map(Session, (session) => ({ inputs: session.inputNames, outputs: session.outputNames })),
  Run: ({ data, dims, input, outputs }) =>
    Effect.flatMap(Session, (session) =>
      Effect.tryPromise({
        try: async () => {
          const result = await session.run({ [input]: new Ort.Tensor("float32", data, dims) }, outputs)
          const tensors: Record<string, OutputTensor> = {}
          for (const name of outputs) {
            const t = result[name]!
            tensors[name] = { type: t.type, dims: t.dims, data: t.data as OutputTensor["data"] }
          }
          return { outputs: tensors, input: data }
        },
        catch: engineFailure
      }))
}).pipe(Layer.provide(NodeWorkerRunner.layer), WorkerRunner.launch, NodeRuntime.runMain)
