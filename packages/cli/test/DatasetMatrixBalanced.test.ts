// The dataset matrix (issue 14) with `balanced`: every case of fixtures/datasetMatrix.ts trains with the built CLI,
// writes a bundle, predicts and evaluates, and the manifest case fits through the AutoML API. A file of its own so
// that it runs beside DatasetMatrix.test.ts (`fast` and the checks on its bundles).
import { beforeAll } from "vitest"
import { manifestCase, presetCases, setUp, timeout } from "./fixtures/matrixRun.js"

beforeAll(setUp, timeout)

presetCases("balanced")

manifestCase("balanced")
