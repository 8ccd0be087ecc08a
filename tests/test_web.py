"""The web page of `ecgcnn serve` (GET /): its files, and the page itself in headless Chromium.

The browser tests run against a real server (the ``live_server`` fixture) and save screenshots in
their tmp_path: web.png (a bundled example predicted), web-upload.png (a WFDB upload), web-error.png
(a broken upload) and web-onnx.png (an ONNX model, no saliency). Set ECGCNN_ARTIFACTS=DIR to also
copy them to DIR, e.g. to keep them as CI artifacts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ecgcnn.serve import Settings, create_app

PAGE_IDS = ("example-select", "predict-button", "file-input", "fs-input", "units-select", "results", "probabilities",
            "ecg", "error", "warnings", "model")  # fmt: skip
MIN_SCREENSHOT_BYTES = 20_000


# --- without a browser ---------------------------------------------------------------------------


def test_page_and_its_files_are_served_and_need_no_other_host(tmp_path):
    # The page needs no model: without the lifespan (no `with`), the checkpoint is never loaded.
    client = TestClient(create_app(Settings(str(tmp_path / "never-loaded.pt"))))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<script src="/static/app.js"' in html and 'href="/static/style.css"' in html
    for name in PAGE_IDS:
        assert f'id="{name}"' in html, name
    js, css = client.get("/static/app.js"), client.get("/static/style.css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "/v1/predict?explain=true" in js.text
    # offline: no address of another host, every src/href on this server (or inline data)
    for text in (html, js.text, css.text):
        assert not re.findall(r"https?://|@import", text)
    links = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert links and all(re.match(r"/[^/]|#|data:", link) for link in links), links
    assert all(u.startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css.text))


def test_the_api_docs_need_no_other_host(tmp_path):
    """/docs and /redoc load their scripts from this server (a hospital network has no CDN)."""
    client = TestClient(create_app(Settings(str(tmp_path / "never-loaded.pt"))))
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        links = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert links and all(re.match(r"/[^/]", link) for link in links), (page, links)
        assert "cdn." not in html and "fonts.googleapis" not in html, page
        for link in links:
            asset = client.get(link)
            assert asset.status_code == 200 and len(asset.content) > 1000, link
    assert "/openapi.json" in client.get("/docs").text


@pytest.mark.slow
def test_the_api_docs_render_offline_in_a_browser(live_server, driver):
    """Swagger UI draws the operations with no network beyond this server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(live_server + "/docs")
    WebDriverWait(driver, 60, poll_frequency=0.2).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock")
    )
    paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/predict", "/v1/predict/batch"} <= paths, paths


# --- the API, as the tests' reference ------------------------------------------------------------


def call(request: urllib.request.Request | str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def api_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    status, answer = call(request)
    assert status == 200, answer
    return answer


def post_files(url: str, files: list[Path], fields: dict[str, str]) -> tuple[int, Any]:
    """A multipart POST as the page's FormData sends it: files under "files", then the fields."""
    boundary = uuid.uuid4().hex
    parts = []
    for path in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                     f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + path.read_bytes() + b"\r\n")  # fmt: skip
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                     f"{value}\r\n".encode())  # fmt: skip
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    ctype = f"multipart/form-data; boundary={boundary}"
    return call(urllib.request.Request(url, data=body, headers={"content-type": ctype}))


def upload_through_page(driver, url: str, files: list[Path]) -> dict[str, Any]:
    """Post ``files`` to the API, then pick them in the page's file input: the page must show the
    API's probabilities. Returns the API's answer."""
    from selenium.webdriver.common.by import By

    status, answer = post_files(url + "/v1/predict", files, {})
    assert status == 200, answer
    open_page(driver, url)
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(f) for f in files))
    assert wait_for(driver, "done", "error") == "done", error_text(driver)
    assert_matches(shown_probabilities(driver), answer)
    return answer


# --- in Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium for this module (each test loads the page afresh), or a skip."""
    from conftest import headless_chromium

    browser = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), browser_log=True)
    browser.set_script_timeout(30)
    yield browser
    browser.quit()


def page_state(driver) -> str:
    return driver.execute_script("return document.body.dataset.state")


def wait_for(driver, *states: str, timeout_s: float = 60.0) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(lambda d: page_state(d) in states)
    return page_state(driver)


def error_text(driver) -> str:
    return driver.execute_script("return document.getElementById('error').textContent")


def open_page(driver, url: str) -> None:
    browser_log(driver)  # drop what earlier tests left
    driver.get(url + "/")
    assert wait_for(driver, "ready", "error") == "ready", error_text(driver)


def browser_log(driver) -> list[dict[str, Any]]:
    try:
        return driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: nothing to check
        return []


def js_errors(driver, allow: str | None = None) -> list[dict[str, Any]]:
    """SEVERE entries in the browser's log (uncaught exceptions, failed loads)."""
    return [
        e for e in browser_log(driver)
        if e.get("level") == "SEVERE" and not (allow and allow in e.get("message", ""))
    ]  # fmt: skip


def choose(driver, select_id: str, value: str) -> None:
    """Choose an option of a <select> as the browser does it, with the change event it fires. This
    chromedriver (Chromium 150) leaves a <select> unchanged on Select.select_by_value (option clicks
    are not delivered; the element is enabled, shown and on top)."""
    driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change', {bubbles: true}));",
        select_id,
        value,
    )


def shown_probabilities(driver) -> dict[str, str]:
    return driver.execute_script(
        "const out = {};"
        "for (const e of document.querySelectorAll('#probabilities [data-class]'))"
        "  out[e.dataset.class] = e.querySelector('.value').textContent;"
        "return out;"
    )


def highlighted(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#probabilities [data-class].on'),"
        " e => e.dataset.class)"
    )


def drawing(driver) -> dict[str, Any]:
    """What #ecg holds: the leads drawn (3 x 4 panels), traces, rhythm strip, saliency bands."""
    return driver.execute_script(
        "const q = (s) => Array.from(document.querySelectorAll(s));"
        "return {leads: q('#ecg [data-lead]').map(e => e.dataset.lead),"
        " traces: q('#ecg [data-lead] path.trace').filter(e => e.getAttribute('d').length > 100)"
        "   .length,"
        " rhythm: q('#ecg [data-rhythm]').map(e => e.dataset.rhythm),"
        " saliency: q('#ecg .saliency').length,"
        " stops: q('#ecg linearGradient stop').length,"
        " width: document.querySelector('#ecg svg') ?"
        "   document.querySelector('#ecg svg').getBoundingClientRect().width : 0};"
    )


def assert_matches(shown: dict[str, str], answer: dict[str, Any]) -> None:
    """The page shows every class's probability to 3 decimals, as the API answered it."""
    assert set(shown) == set(answer["probabilities"])
    for name, p in answer["probabilities"].items():
        assert re.fullmatch(r"[01]\.\d{3}", shown[name]), shown
        assert 0.0 <= float(shown[name]) <= 1.0
        assert abs(float(shown[name]) - p) <= 0.0005 + 1e-9, (name, shown[name], p)


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    artifacts = os.environ.get("ECGCNN_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / name)
    print(f"screenshot: {shot}")
    # a page with a drawing, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > MIN_SCREENSHOT_BYTES, shot.stat().st_size
    return shot


@pytest.mark.slow
def test_example_is_predicted_and_drawn_on_ecg_paper(live_server, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    model = api_json(live_server + "/v1/model")
    example = api_json(live_server + "/v1/examples/inferior-mi")
    answer = api_json(live_server + "/v1/predict", example)

    open_page(driver, live_server)
    header = driver.find_element(By.TAG_NAME, "header").text
    assert model["id"] in header and "not a medical device" in header
    Select(driver.find_element(By.ID, "example-select")).select_by_value("inferior-mi")
    driver.find_element(By.ID, "predict-button").click()
    assert wait_for(driver, "done", "error") == "done", error_text(driver)

    assert set(model["classes"]) == set(answer["probabilities"])
    assert_matches(shown_probabilities(driver), answer)
    assert sorted(highlighted(driver)) == sorted(answer["labels"])
    ecg = drawing(driver)
    assert sorted(ecg["leads"]) == sorted(model["leads"]) and len(ecg["leads"]) == 12
    assert ecg["traces"] == 12 and ecg["rhythm"] == ["II"]
    assert ecg["saliency"] == 13 and ecg["stops"] > 100  # a band behind each trace
    assert ecg["width"] > 700  # readable at 1280 x 900
    top = max(answer["probabilities"], key=answer["probabilities"].__getitem__)
    assert driver.find_element(By.ID, "explained-class").text == top
    assert driver.find_element(By.ID, "record-name").text == example["name"]
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert not js_errors(driver)
    screenshot(driver, tmp_path, "web.png")


@pytest.mark.slow
def test_wfdb_upload_is_predicted(live_server, driver, synthetic_root, tmp_path):
    from selenium.webdriver.common.by import By

    hea = sorted((synthetic_root / "records100").rglob("*.hea"))[0]
    files = [Path(shutil.copy(hea.with_suffix(s), tmp_path)) for s in (".hea", ".dat")]
    upload_through_page(driver, live_server, files)
    assert driver.find_element(By.ID, "record-name").text == hea.stem
    ecg = drawing(driver)
    assert len(set(ecg["leads"])) == 12 and ecg["traces"] == 12 and ecg["saliency"] == 13
    assert not js_errors(driver)
    screenshot(driver, tmp_path, "web-upload.png")


@pytest.mark.slow
def test_the_baseline_control_scores_the_record_again_as_asked(
    live_server, driver, synthetic_root, tmp_path
):
    """A record 1.5 mV off zero: by default (the model learnt records as recorded) filtered, as the
    API scores it without a baseline field; 'as recorded' posts baseline=keep and shows its warning."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from ecgcnn.records import read_record

    signal, fs = read_record(
        sorted((synthetic_root / "records100").rglob("*.hea"))[0].with_suffix("")
    )
    offset = tmp_path / "offset.npy"
    np.save(offset, signal + 1.5)
    status, default = post_files(live_server + "/v1/predict", [offset], {"fs": str(fs)})
    assert status == 200, default
    status, kept = post_files(
        live_server + "/v1/predict", [offset], {"fs": str(fs), "baseline": "keep"}
    )
    assert status == 200, kept
    assert any("more than 1 mV off zero" in w for w in kept["warnings"])
    assert kept["probabilities"] != default["probabilities"]

    open_page(driver, live_server)
    choice = Select(driver.find_element(By.ID, "baseline-select"))
    assert choice.first_selected_option.text == "the model's default: filtered below 0.5 Hz"
    rate = driver.find_element(By.ID, "fs-input")
    rate.clear()
    rate.send_keys(str(fs))
    driver.find_element(By.ID, "file-input").send_keys(str(offset))
    assert wait_for(driver, "done", "error") == "done", error_text(driver)
    assert_matches(shown_probabilities(driver), default)

    # the same file again, scored as recorded
    choose(driver, "baseline-select", "keep")

    def shows_kept(d) -> bool:
        try:
            assert_matches(shown_probabilities(d), kept)
        except AssertionError:
            return False
        return page_state(d) == "done"

    WebDriverWait(driver, 60, poll_frequency=0.1).until(shows_kept)
    assert "more than 1 mV off zero" in driver.find_element(By.ID, "warnings").text
    assert not js_errors(driver)


@pytest.mark.slow
def test_the_units_control_says_what_a_npy_file_cannot(
    live_server, driver, synthetic_root, tmp_path
):
    """A .npy in volts: chosen as V it is the same ECG as the millivolt file; switched back to mV
    the page uploads it again and shows the server's refusal (every lead flat)."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from ecgcnn.records import read_record

    signal, fs = read_record(
        sorted((synthetic_root / "records100").rglob("*.hea"))[0].with_suffix("")
    )
    volts = tmp_path / "volts.npy"
    np.save(volts, signal / 1000.0)
    status, millivolts = post_files(
        live_server + "/v1/predict", [volts], {"fs": str(fs), "units": "V"}
    )
    assert status == 200, millivolts

    open_page(driver, live_server)
    rate = driver.find_element(By.ID, "fs-input")
    rate.clear()
    rate.send_keys(str(fs))
    choose(driver, "units-select", "V")  # before any upload: nothing to score again
    driver.find_element(By.ID, "file-input").send_keys(str(volts))
    assert wait_for(driver, "done", "error") == "done", error_text(driver)
    assert_matches(shown_probabilities(driver), millivolts)

    choose(driver, "units-select", "mV")
    assert wait_for(driver, "error") == "error"
    assert "every lead is flat" in error_text(driver) and "--units V" not in error_text(driver)
    assert not js_errors(driver, allow="422")


@pytest.mark.slow
def test_a_npy_without_a_rate_typed_is_not_scored_at_a_guessed_one(
    live_server, driver, synthetic_root, tmp_path
):
    """The rate box starts empty: a .npy uploaded before a rate is typed gets the server's
    request for one, never a prediction at a rate the page assumed (once 500 Hz)."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from ecgcnn.records import read_record

    signal, fs = read_record(
        sorted((synthetic_root / "records100").rglob("*.hea"))[0].with_suffix("")
    )
    npy = tmp_path / "rate.npy"
    np.save(npy, signal)
    open_page(driver, live_server)
    assert driver.find_element(By.ID, "fs-input").get_attribute("value") == ""
    driver.find_element(By.ID, "file-input").send_keys(str(npy))
    assert wait_for(driver, "done", "error") == "error"
    assert "has no sampling rate" in error_text(driver) and "form field fs" in error_text(driver)
    driver.find_element(By.ID, "fs-input").send_keys(str(fs))
    driver.find_element(By.ID, "fs-input").send_keys("\t")  # the change event: scored again
    status, expected = post_files(live_server + "/v1/predict", [npy], {"fs": str(fs)})
    assert status == 200, expected
    assert wait_for(driver, "done") == "done", error_text(driver)
    assert_matches(shown_probabilities(driver), expected)
    assert not js_errors(driver, allow="422")


@pytest.mark.slow
def test_broken_upload_shows_the_servers_message(live_server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    broken = tmp_path / "broken.csv"
    broken.write_text("time,lead I\nhello,world\n")
    # what the page sends: the file and the rate field's default
    status, answer = post_files(live_server + "/v1/predict", [broken], {"fs": "500"})
    assert status == 422, answer
    message = answer["error"]["message"]

    open_page(driver, live_server)
    driver.find_element(By.ID, "file-input").send_keys(str(broken))
    assert wait_for(driver, "done", "error") == "error"
    box = driver.find_element(By.ID, "error")
    assert box.is_displayed() and box.get_attribute("role") == "alert"
    shown = driver.find_element(By.ID, "error-message").text
    assert shown == message and "ecgcnn-upload-" not in message  # no server paths
    assert "422" in box.text and answer["error"]["code"] in box.text
    assert not driver.find_element(By.ID, "results").is_displayed()
    assert not js_errors(driver, allow="status of 422")  # the failed POST itself is logged
    screenshot(driver, tmp_path, "web-error.png")


@pytest.mark.slow
def test_onnx_model_shows_the_example_without_saliency(served_checkpoint, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from conftest import start_server, stop_server

    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from ecgcnn.export import export_onnx

    onnx = tmp_path / "model.onnx"
    export_onnx(served_checkpoint, onnx)
    proc, url = start_server(onnx, tmp_path / "serve.log")
    try:
        answer = api_json(url + "/v1/predict", api_json(url + "/v1/examples/normal"))
        open_page(driver, url)
        Select(driver.find_element(By.ID, "example-select")).select_by_value("normal")
        driver.find_element(By.ID, "predict-button").click()
        assert wait_for(driver, "done", "error") == "done", error_text(driver)
        assert_matches(shown_probabilities(driver), answer)
        ecg = drawing(driver)
        assert len(set(ecg["leads"])) == 12 and ecg["traces"] == 12 and ecg["saliency"] == 0
        assert "ONNX" in driver.find_element(By.ID, "legend").text
        # the explain=true attempt that the server refuses (422) is the only failed load
        assert not js_errors(driver, allow="status of 422")
        screenshot(driver, tmp_path, "web-onnx.png")
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_a_device_dicom_upload_is_predicted_and_drawn(live_server, driver, tmp_path):
    """A real recorder's DICOM (pydicom's Mortara sample, 1000 Hz) through the page's file input."""
    from pydicom.data import get_testdata_file

    dcm = Path(shutil.copy(get_testdata_file("waveform_ecg.dcm"), tmp_path / "mortara.dcm"))
    upload_through_page(driver, live_server, [dcm])
    ecg = drawing(driver)
    assert len(set(ecg["leads"])) == 12 and ecg["traces"] == 12
    assert not js_errors(driver)


@pytest.mark.slow
def test_an_mfer_upload_is_predicted_and_a_hostile_one_refused(live_server, driver, tmp_path):
    """An MFER file through the page's file input; one that would cost the decoder gigabytes
    (frames declaring far more than they hold) is refused by the server before decoding."""
    from selenium.webdriver.common.by import By

    from test_device_formats import EIGHT, HOSTILE_MFER, _hostile_head, ecg, write_mfer

    good = write_mfer(tmp_path / "cart.mwf", ecg(seed=30), EIGHT, block=100)
    upload_through_page(driver, live_server, [good])
    assert drawing(driver)["traces"] == 12

    hostile = tmp_path / "hostile.mwf"
    hostile.write_bytes(_hostile_head() + HOSTILE_MFER["tiny frames"][0] + b"\x80\x00")
    status, answer = post_files(live_server + "/v1/predict", [hostile], {})
    assert status == 422 and "MFER frames declare" in answer["error"]["message"], answer
    driver.find_element(By.ID, "file-input").send_keys(str(hostile))
    assert wait_for(driver, "done", "error") == "error"
    assert driver.find_element(By.ID, "error-message").text == answer["error"]["message"]
    assert not js_errors(driver, allow="status of 422")
