"""`ecgcnn serve`: the REST API in process (FastAPI's TestClient) and over TCP (uvicorn)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ecgcnn.cli import app as cli_app
from ecgcnn.predict import Predictor
from ecgcnn.recording import remove_baseline
from ecgcnn.records import LEADS
from ecgcnn.serve import EXAMPLES, MiB, Settings, create_app, example_body

pytestmark = pytest.mark.slow


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@pytest.fixture(scope="module")
def client(served_checkpoint):
    app = create_app(Settings(str(served_checkpoint), max_body_bytes=2 * MiB, max_batch=4))
    with TestClient(app, raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def predictor(served_checkpoint):
    return Predictor.from_checkpoint(served_checkpoint)


@pytest.fixture(scope="module")
def body():
    return example_body("inferior-mi")


def probs(out: dict) -> np.ndarray:
    return np.array(list(out["probabilities"].values()))


# --- model, health -------------------------------------------------------------------------------


def test_health_readiness_and_model(client, predictor):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model_id"].startswith("cnn1d-superdiagnostic-")
    model = client.get("/v1/model").json()
    assert model["id"] == ready["model_id"]
    assert (model["name"], model["members"]) == ("cnn1d", 1)  # an ensemble says how many networks
    assert model["classes"] == predictor.classes and list(model["thresholds"]) == predictor.classes
    assert (model["fs"], model["window"], model["stride"], model["aggregate"]) == (
        100,
        250,
        125,
        "max",
    )
    # learnt as recorded (the recipes' default), so requests are high-pass filtered unless they say
    assert (model["trained_baseline"], model["default_baseline"]) == ("keep", "highpass")
    assert model["limits"] == {"max_body_bytes": 2 * MiB, "max_duration_s": 120.0, "max_batch": 4}
    assert model["metrics"]["val"]["records"] > 0


def test_a_model_that_cannot_load_fails_readiness_and_liveness(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with TestClient(create_app(Settings(str(bad)))) as c:
        deadline = time.monotonic() + 30
        while "load_failed" not in c.get("/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "load_failed"
        assert "not a loadable ecgcnn checkpoint" in r.json()["error"]["message"]
        # nothing will load it now: liveness fails too, so Kubernetes restarts the pod rather
        # than keep one that can never be ready
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "load_failed"
        assert c.post("/v1/predict", json=example_body("normal")).status_code == 503


def test_docs_and_schema_describe_both_request_kinds(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "signal" in schema["components"]["schemas"]["EcgIn"]["properties"]
    assert "/v1/predict/batch" in schema["paths"] and "/v1/model" in schema["paths"]


# --- predictions ---------------------------------------------------------------------------------


def test_json_prediction_equals_the_library(client, predictor, body):
    r = client.post("/v1/predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    expected = predictor.predict(np.array(body["signal"]).T, body["fs"], body["leads"])
    assert out["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert out["labels"] == [
        c for c, p in out["probabilities"].items() if p >= out["thresholds"][c]
    ]
    assert out["windows"] == 7 and out["duration_s"] == 10.0 and out["record"] == body["name"]
    assert "explanation" not in out


def test_layouts_lead_order_units_and_rates_agree(client, body):
    base = probs(client.post("/v1/predict", json=body).json())
    signal = np.array(body["signal"])
    sample_major = {**body, "signal": signal.T.tolist(), "layout": "sample-major"}
    order = [3, 0, 11, 5, 1, 2, 4, 6, 7, 8, 9, 10]
    shuffled = {**body, "signal": signal[order].tolist(),
                "leads": [["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"][i] for i in order]}  # fmt: skip
    microvolts = {**body, "signal": (signal * 1000).tolist(), "units": "uV"}
    for variant in (sample_major, shuffled, microvolts):
        r = client.post("/v1/predict", json=variant)
        assert r.status_code == 200, r.text
        assert probs(r.json()) == pytest.approx(base, abs=1e-5)
    # millivolts sent as microvolts: flat, and the message names the units the client gave
    r = client.post("/v1/predict", json={**body, "units": "uV"})
    message = r.json()["error"]["message"]
    assert r.status_code == 422 and "read in uV (as units or its header says)" in message, message
    assert "--" not in message
    from scipy.signal import resample_poly

    at500 = {**body, "signal": resample_poly(signal, 5, 1, axis=1).tolist(), "fs": 500}
    assert probs(client.post("/v1/predict", json=at500).json()) == pytest.approx(base, abs=0.05)


def test_missing_leads_are_filled_only_when_allowed(client, body):
    ten = {**body, "signal": body["signal"][:10], "leads": body["leads"][:10]}
    r = client.post("/v1/predict", json=ten)
    assert r.status_code == 422 and r.json()["error"]["field"] == "leads"
    assert "missing lead(s) V5, V6" in r.json()["error"]["message"]
    r = client.post("/v1/predict", json={**ten, "allow_missing_leads": True})
    assert r.status_code == 200 and r.json()["filled_leads"] == ["V5", "V6"]
    flat = {**body, "signal": [*body["signal"][:11], [0.2] * len(body["signal"][11])]}
    message = client.post("/v1/predict", json=flat).json()["error"]["message"]
    assert "flat lead(s) V6" in message and "(allow_missing_leads fills flat leads" in message
    assert "--" not in message


def test_explanation_is_the_top_class_saliency(client, body):
    r = client.post("/v1/predict", params={"explain": "true"}, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    e = out["explanation"]
    assert e["target"] == max(out["probabilities"], key=out["probabilities"].get)
    saliency, signal = np.array(e["saliency"]), np.array(e["signal"])
    assert saliency.shape == signal.shape == (12, 1000) and e["fs"] == 100
    assert saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)
    filtered = remove_baseline(np.array(body["signal"]).T, 100, "highpass").T  # as scored
    assert np.abs(signal - filtered).max() < 1e-3  # same rate: the input itself


def test_explanation_is_of_the_score_predict_reports(client, predictor, body):
    """The saliency is of the aggregated window probability (what explain shows), not window by
    window; a record a little short of one window is padded for it as predict pads it."""
    from ecgcnn.explain import explain_signal

    out = client.post("/v1/predict", params={"explain": "true"}, json=body).json()
    e = out["explanation"]
    index = predictor.classes.index(e["target"])
    x = remove_baseline(np.array(body["signal"], dtype=np.float32).T, 100, "highpass").T
    ref = explain_signal(predictor.model, x, index, "saliency", predictor.window,
                         predictor.stride, predictor.aggregate)  # fmt: skip
    assert ref.probability == pytest.approx(out["probabilities"][e["target"]], abs=1e-4)
    expected = ref.attribution / ref.attribution.max()
    assert np.abs(np.array(e["saliency"]) - expected).max() < 2e-3
    short = predictor.window - 1  # 2.49 s: within predict's 1% tolerance
    cut = {**body, "signal": [lead[:short] for lead in body["signal"]]}
    r = client.post("/v1/predict", params={"explain": "true"}, json=cut)
    assert r.status_code == 200, r.text
    e = r.json()["explanation"]
    assert np.array(e["saliency"]).shape == np.array(e["signal"]).shape == (12, predictor.window)


def test_every_bundled_example_predicts(client):
    names = [e["name"] for e in client.get("/v1/examples").json()]
    assert names == list(EXAMPLES)
    for name in names:
        ex = client.get(f"/v1/examples/{name}").json()
        assert np.array(ex["signal"]).shape == (12, 1000)
        assert client.post("/v1/predict", json=ex).status_code == 200
    r = client.get("/v1/examples/nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "name"


def test_batch_answers_each_record(client, body):
    bad = {**body, "fs": "fast", "name": "broken"}
    r = client.post("/v1/predict/batch", json={"records": [body, bad, {**body, "name": "again"}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["record"] for x in results] == [body["name"], "broken", "again"]
    assert results[0]["prediction"]["probabilities"] == results[2]["prediction"]["probabilities"]
    assert results[1]["error"]["field"] == "records[1].fs" and "prediction" not in results[1]
    unnamed = {k: v for k, v in body.items() if k != "name"}  # one name for it, inside and out
    r = client.post("/v1/predict/batch", json={"records": [unnamed, unnamed]})
    assert [x["record"] for x in r.json()["results"]] == ["record-0", "record-1"], r.text
    assert [x["prediction"]["record"] for x in r.json()["results"]] == ["record-0", "record-1"]
    r = client.post("/v1/predict/batch", json={"records": [body] * 5})
    assert r.status_code == 413 and r.json()["error"]["field"] == "records"
    r = client.post("/v1/predict/batch", json={"records": []})
    assert r.status_code == 422 and r.json()["error"]["field"] == "records"
    r = client.post("/v1/predict/batch", json={"records": [body], "x": 1})  # as /v1/predict
    assert r.status_code == 422 and r.json()["error"]["field"] == "x", r.text
    # a record's errors name it the same way, found by the schema or after it
    short = {**body, "signal": [row[:100] for row in body["signal"]]}
    r = client.post("/v1/predict/batch", json={"records": [body, short]})
    assert r.json()["results"][1]["error"]["field"] == "records[1].signal", r.text


# --- uploads -------------------------------------------------------------------------------------


def record_files(root: Path, stem: str | None = None) -> list[Path]:
    hea = sorted((root / "records100").rglob("*.hea"))
    hea = [h for h in hea if stem is None or h.stem == stem][0]
    return [hea, hea.with_suffix(".dat")]


def upload(paths: list[Path], **names: str) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (names.get(p.name, p.name), p.read_bytes())) for p in paths]


def test_wfdb_upload_equals_the_library(client, predictor, synthetic_root):
    files = record_files(synthetic_root)
    r = client.post("/v1/predict", files=upload(files))
    assert r.status_code == 200, r.text
    expected = predictor.predict_record(files[0])
    assert r.json()["record"] == files[0].stem
    assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    r = client.post("/v1/predict", params={"explain": True}, files=upload(files))
    assert np.array(r.json()["explanation"]["saliency"]).shape == (12, 1000)


def test_csv_upload_needs_its_rate(client, body, tmp_path):
    csv = tmp_path / "ecg.csv"
    signal = np.array(body["signal"]).T
    csv.write_text(
        ",".join(body["leads"])
        + "\n"
        + "\n".join(",".join(f"{v:.4f}" for v in row) for row in signal)
    )
    r = client.post("/v1/predict", files=upload([csv]), data={"fs": "100"})
    assert r.status_code == 200, r.text
    direct = client.post("/v1/predict", json=body).json()
    assert probs(r.json()) == pytest.approx(probs(direct), abs=1e-4)
    r = client.post("/v1/predict", files=upload([csv]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "files"
    message = r.json()["error"]["message"]
    assert "form field fs" in message and "--fs" not in message
    assert (
        "ecgcnn-upload-" not in message and "ecg.csv" in message
    )  # the file, not the server's folder
    r = client.post("/v1/predict", files=upload([csv]), data={"fs": "-3"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "fs"


def test_the_baseline_is_filtered_unless_kept_by_json_and_upload(client, predictor, body, tmp_path):
    signal = np.array(body["signal"])
    centred = signal - np.median(signal, axis=1, keepdims=True)
    shifted = (centred + 1.5).tolist()
    kept = client.post("/v1/predict", json={**body, "signal": shifted, "baseline": "keep"}).json()
    assert any(
        "more than 1 mV off zero" in w and "baseline highpass" in w for w in kept["warnings"]
    )
    assert not any("--" in w for w in kept["warnings"])  # the API's field, not the CLI flag
    expected = predictor.predict(centred.T, body["fs"], body["leads"])  # filtered: the default
    r = client.post("/v1/predict", params={"explain": True}, json={**body, "signal": shifted})
    assert r.status_code == 200 and r.json()["warnings"] == []
    assert r.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5)
    lead = r.json()["explanation"]["signal"][0]  # the explained signal is the one scored
    assert abs(np.median(lead)) < 0.05
    npy = tmp_path / "shifted.npy"
    np.save(npy, np.array(shifted).T)
    up = client.post("/v1/predict", files=upload([npy]), data={"fs": "100", "baseline": "median"})
    assert up.status_code == 200, up.text
    median = predictor.predict(centred.T, body["fs"], body["leads"], baseline="keep")
    assert up.json()["probabilities"] == pytest.approx(median.probabilities, abs=1e-5)
    bad = client.post("/v1/predict", files=upload([npy]), data={"fs": "100", "baseline": "mean"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "baseline"


@pytest.mark.parametrize("header_length", [True, False])  # WFDB lets a header leave it out
def test_a_record_too_long_by_its_header_is_refused_before_it_is_decoded(
    client, tmp_path, monkeypatch, header_length
):
    """A compressed CinC .mat of a few KiB can inflate to hours of signal (hundreds of MB once
    scored): the header's length (else the .mat's own matrix header) refuses it before a sample is
    read."""
    import scipy.io

    from ecgcnn import recording

    samples = 2_000_000  # 20,000 s at 100 Hz
    scipy.io.savemat(tmp_path / "bomb.mat", {"val": np.zeros((12, samples), np.int16)},
                     do_compression=True)  # fmt: skip
    lines = [f"bomb 12 100 {samples}" if header_length else "bomb 12 100"] + [
        f"bomb.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in LEADS
    ]
    (tmp_path / "bomb.hea").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "bomb.mat").stat().st_size < 2 * MiB

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the record was decoded")

    monkeypatch.setattr(recording, "read_recording", never)
    files = upload([tmp_path / "bomb.hea", tmp_path / "bomb.mat"])
    for url in ("/v1/predict", "/v1/predict/batch"):
        r = client.post(url, files=files)
        error = r.json()["error"] if url == "/v1/predict" else r.json()["results"][0]["error"]
        assert error["code"] == "too_long", r.text
        assert "bomb lasts 20000 s" in error["message"]


def test_upload_errors_name_the_files(client, synthetic_root):
    hea, dat = record_files(synthetic_root)
    r = client.post("/v1/predict", files=upload([hea]))
    assert r.status_code == 422 and r.json()["error"]["field"] == "files"
    r = client.post("/v1/predict", files=upload([hea, dat], **{hea.name: "../evil.hea"}))
    assert r.status_code == 422 and "not a usable file name" in r.json()["error"]["message"]
    r = client.post("/v1/predict", files=upload([hea, dat], **{dat.name: "x.exe"}))
    assert r.status_code == 422 and r.json()["error"]["field"] == "files"
    other = record_files(
        synthetic_root, sorted((synthetic_root / "records100").rglob("*.hea"))[1].stem
    )
    r = client.post("/v1/predict", files=upload([hea, dat, *other]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "one_record"
    r = client.post("/v1/predict/batch", files=upload([hea, dat, *other]))
    assert r.status_code == 200 and [x["record"] for x in r.json()["results"]] == [
        hea.stem,
        other[0].stem,
    ]
    r = client.post("/v1/predict", data={"fs": "100"}, files={"other": ("a.txt", b"x")})
    assert r.status_code == 422 and r.json()["error"]["field"] == "files"


# --- bad requests --------------------------------------------------------------------------------


def case(body, **change):
    out = {**body, **change}
    return json.dumps(out, allow_nan=True).encode()


BAD = {
    # name: (request body or a function of the good body, status, code, field)
    "malformed json": (lambda b: b'{"signal": [[1, 2', 400, "malformed_json", "body"),
    "not an object": (lambda b: b"[1, 2, 3]", 422, "invalid_field", "body"),
    "missing signal": (lambda b: b'{"fs": 100}', 422, "invalid_field", "signal"),
    "text in signal": (lambda b: case(b, signal=[["a"] * 10] * 12), 422, "invalid_field", "signal[0][0]"),
    "ragged rows": (lambda b: case(b, signal=[b["signal"][0]] + [b["signal"][1][:-1]] + b["signal"][2:]),
                    422, "invalid_shape", "signal[1]"),  # fmt: skip
    "wrong lead count": (lambda b: case(b, signal=b["signal"][:11]), 422, "invalid_shape", "signal"),
    "unknown lead": (lambda b: case(b, leads=["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "X7"]),
                     422, "unknown_lead", "leads"),  # fmt: skip
    "duplicate lead": (lambda b: case(b, leads=["I"] * 12), 422, "invalid_record", "leads"),
    "nan": (lambda b: case(b, signal=[[float("nan")] + r[1:] for r in b["signal"]]), 422, "not_finite", "signal"),
    "overflow": (lambda b: case(b, signal=[[1e300] + r[1:] for r in b["signal"]]), 422, "out_of_range", "signal"),
    "too short": (lambda b: case(b, signal=[r[:100] for r in b["signal"]]), 422, "too_short", "signal"),
    "too long": (lambda b: case(b, signal=[[0.0] * 12_100] * 12), 422, "too_long", "signal"),
    "zero rate": (lambda b: case(b, fs=0), 422, "invalid_field", "fs"),
    "unknown units": (lambda b: case(b, units="mmHg"), 422, "invalid_field", "units"),
    "unknown baseline": (lambda b: case(b, baseline="mean"), 422, "invalid_field", "baseline"),
    "microvolts as mV": (lambda b: case(b, signal=[[v * 1000 for v in r] for r in b["signal"]]), 422,
                         "invalid_record", "signal"),  # fmt: skip
    "unknown field": (lambda b: case(b, sgnal=[]), 422, "invalid_field", "sgnal"),
    "no leads": (lambda b: case(b, leads=[]), 422, "invalid_field", "leads"),
    "nested too deep": (lambda b: b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json", "body"),
}  # fmt: skip


@pytest.mark.parametrize("name", BAD)
def test_bad_json_gets_a_4xx_naming_the_field(client, body, name):
    make, status, code, field = BAD[name]
    r = client.post("/v1/predict", content=make(body), headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["field"]) == (
        status,
        code,
        field,
    ), r.text
    assert "Traceback" not in r.text
    assert "--" not in r.json()["error"]["message"], "command-line wording in an API error"


def test_content_type_size_routes_and_methods(client, body):
    data = json.dumps(body).encode()
    for headers in ({"content-type": "text/plain"}, {}):
        r = client.post("/v1/predict", content=data, headers=headers)
        assert r.status_code == 415 and r.json()["error"]["field"] == "content-type"
    r = client.post(
        "/v1/predict", content=b" " * (2 * MiB + 1), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and "/docs" in r.json()["error"]["message"]
    r = client.get("/v1/predict")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_onnx_model_serves_without_explanations(served_checkpoint, tmp_path, body):
    from ecgcnn.export import export_onnx

    onnx = tmp_path / "model.onnx"
    export_onnx(served_checkpoint, onnx)
    with TestClient(create_app(Settings(str(onnx)))) as c:
        wait_ready(c)
        assert c.get("/v1/model").json()["backend"] == "onnxruntime"
        r = c.post("/v1/predict", json=body)
        torch_out = Predictor.from_checkpoint(served_checkpoint).predict(
            np.array(body["signal"]).T, 100
        )
        assert probs(r.json()) == pytest.approx(
            np.array(list(torch_out.probabilities.values())), abs=1e-4
        )
        r = c.post("/v1/predict?explain=true", json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "not_supported"


# --- the command and a real server ---------------------------------------------------------------


def test_onnx_model_is_served_on_one_onnxruntime_thread(served_checkpoint, tmp_path, monkeypatch):
    """As PyTorch is (one intra-op thread per inference thread): onnxruntime's default would be
    every core it sees, for each of --threads concurrent requests."""
    from ecgcnn.export import export_onnx

    onnx = tmp_path / "model.onnx"
    export_onnx(served_checkpoint, onnx)
    asked = []
    load = Predictor.from_onnx.__func__

    def recording(cls, path, **kwargs):
        asked.append(kwargs.get("threads"))
        return load(cls, path, **kwargs)

    monkeypatch.setattr(Predictor, "from_onnx", classmethod(recording))
    with TestClient(create_app(Settings(str(onnx)))) as c:
        wait_ready(c)
    assert asked == [1]
    Predictor.load(served_checkpoint, threads=1)  # a checkpoint takes the argument too


def test_serve_loads_the_model_once(served_checkpoint, monkeypatch):
    """One process: the model checked by the command is the one served (not loaded again)."""
    import uvicorn

    loads, served = [], []
    load = Predictor.load.__func__

    def counting(cls, path, **kwargs):
        loads.append(path)
        return load(cls, path, **kwargs)

    monkeypatch.setattr(Predictor, "load", classmethod(counting))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    r = CliRunner().invoke(cli_app, ["serve", "--checkpoint", str(served_checkpoint)])
    assert r.exit_code == 0, r.output
    ((app, kw),) = served
    with TestClient(app) as c:
        wait_ready(c)
        assert c.get("/readyz").json()["model_id"].startswith("cnn1d-superdiagnostic-")
    assert len(loads) == 1 and kw["workers"] == 1


def test_serve_command_rejects_bad_settings(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", "--checkpoint", "x.pt", "--max-inflight-mb", "4"])
    assert r.exit_code != 0 and "--max-inflight-mb (4) must hold the largest body" in str(
        r.exception or r.output
    )
    r = runner.invoke(cli_app, ["serve", "--checkpoint", "x.pt", "--log-level", "warn"])
    assert r.exit_code != 0 and "'warn' is not one of" in str(r.exception or r.output)
    folder = tmp_path / "models"
    folder.mkdir()
    r = runner.invoke(cli_app, ["serve", "--checkpoint", str(folder)])
    assert r.exit_code != 0 and "is a folder" in str(r.exception or r.output)
    r = runner.invoke(cli_app, ["serve", "--checkpoint", str(tmp_path / "missing.pt")])
    assert r.exit_code != 0 and "not found" in str(r.exception or r.output)
    r = runner.invoke(cli_app, ["serve", "--checkpoint", "x.pt", "--port", "0"])
    assert r.exit_code != 0 and "--port" in str(r.exception or r.output)


def test_real_server_with_two_workers(served_checkpoint, tmp_path, body):
    from conftest import start_server, stop_server

    proc, url = start_server(served_checkpoint, tmp_path / "serve.log", "--workers", "2")
    try:
        request = urllib.request.Request(url + "/v1/predict", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})  # fmt: skip
        answers = []
        for _ in range(6):
            with urllib.request.urlopen(request, timeout=30) as r:
                answers.append(json.loads(r.read())["probabilities"])
        assert all(a == answers[0] for a in answers)
        with urllib.request.urlopen(url + "/") as r:
            assert r.headers["content-type"].startswith("text/html")
    finally:
        stop_server(proc)
    assert (tmp_path / "serve.log").read_text().count("INFO: serving cnn1d") == 2  # both workers


def test_explanation_sees_the_record_predict_scored(client, body):
    """A flat lead that predict zero-fills (allowed) is zero in the explained signal too."""
    flat = [list(lead) for lead in body["signal"]]
    flat[7] = [0.3] * len(flat[7])  # V2 disconnected: a constant offset
    r = client.post("/v1/predict", params={"explain": "true"},
                    json={**body, "signal": flat, "allow_missing_leads": True})  # fmt: skip
    assert r.status_code == 200, r.text
    assert "V2" in r.json()["filled_leads"]
    assert not np.array(r.json()["explanation"]["signal"])[7].any()
