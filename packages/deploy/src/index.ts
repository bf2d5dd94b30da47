/**
 * @loupe/deploy: the predictor, the HTTP invoke server with its auth, limits and invoke capture, and export targets
 * (bundle, single-graph ONNX, Docker build context).
 *
 * @since 0.1.0
 */
export * as DeployError from "./DeployError.js"
export * as ImageGuard from "./ImageGuard.js"
export * as UrlFetch from "./UrlFetch.js"
export * as Predictor from "./Predictor.js"
export * as ApiKeys from "./ApiKeys.js"
export * as RateLimiter from "./RateLimiter.js"
export * as CapturePolicy from "./CapturePolicy.js"
export * as OnnxExport from "./OnnxExport.js"
export * as ImagePayload from "./ImagePayload.js"
export * as FunctionApi from "./FunctionApi.js"
export * as FunctionBackend from "./FunctionBackend.js"
export * as Server from "./Server.js"
export * as BundleBackend from "./BundleBackend.js"
export * as ServeBundle from "./ServeBundle.js"
export * as DockerContext from "./DockerContext.js"
