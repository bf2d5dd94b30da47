"""bench/generalize's baseline: scikit-learn LogisticRegressionCV on embeddings that run.mjs wrote.

    /usr/bin/python3 bench/generalize/baseline.py <dir>

<dir> holds meta.json ({"dim", "nTrain", "nTest"}), x_train.f32 / x_test.f32 (row-major float32, little-endian) and
y_train.i32 / y_test.i32 (int32 labels). Prints one JSON object on stdout.

The model is LogisticRegressionCV(Cs=10, cv=5) with its default scoring (accuracy), default solver (lbfgs) and
default L2 penalty, on the raw embeddings (no scaling), with max_iter=10000 so that every fit converges; a
ConvergenceWarning is reported, not hidden.
"""
import json
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV

d = sys.argv[1]
meta = json.load(open(os.path.join(d, "meta.json")))
dim = meta["dim"]
x_train = np.fromfile(os.path.join(d, "x_train.f32"), dtype="<f4").reshape(meta["nTrain"], dim)
y_train = np.fromfile(os.path.join(d, "y_train.i32"), dtype="<i4")
x_test = np.fromfile(os.path.join(d, "x_test.f32"), dtype="<f4").reshape(meta["nTest"], dim)
y_test = np.fromfile(os.path.join(d, "y_test.i32"), dtype="<i4")

t0 = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = LogisticRegressionCV(Cs=10, cv=5, max_iter=10000).fit(x_train, y_train)
fit_ms = (time.perf_counter() - t0) * 1000
pred = model.predict(x_test)
correct = int((pred == y_test).sum())
print(json.dumps({
    "correct": correct,
    "total": int(len(y_test)),
    "accuracy": correct / len(y_test),
    "hits": [int(h) for h in (pred == y_test)],
    "C": float(np.mean(model.C_)),
    "fitMs": fit_ms,
    "convergenceWarnings": sum(1 for w in caught if issubclass(w.category, ConvergenceWarning)),
    "otherWarnings": sorted({str(w.message).split("\n")[0][:160] for w in caught if not issubclass(w.category, ConvergenceWarning)})
}))
