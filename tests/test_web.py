"""mm-serve: its JSON endpoints, and its page in a real headless browser (Debian's chromium)."""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from t2t_multimodel.infer import serving, web
from tests.test_serving import PROBLEM_NAMES, _client_files, make_run

SERVE = os.path.join(os.path.dirname(sys.executable), "mm-serve")
LINE = "In the beginning God created the heavens and the earth."


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  return make_run(tmp_path_factory)


@pytest.fixture(scope="module")
def url(run):
  """A running mm-serve on a free port of 127.0.0.1; its base URL."""
  process = subprocess.Popen([SERVE, f"--output_dir={run}", "--port=0"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
  line = process.stdout.readline()  # "Serving RUN on http://127.0.0.1:PORT/ (Ctrl-C stops)"
  match = re.search(r"http://127\.0\.0\.1:\d+/", line)
  assert match, f"mm-serve did not start: {line!r}"
  yield match.group(0)
  process.terminate()
  process.wait(timeout=30)


def _post(url, body: bytes, headers=None):
  request = urllib.request.Request(url + "api/decode", data=body, headers=headers or {})
  try:
    with urllib.request.urlopen(request, timeout=300) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as error:
    return error.code, json.loads(error.read())


def test_problems_endpoint_describes_each_input(url):
  with urllib.request.urlopen(url + "api/problems", timeout=60) as response:
    content = json.loads(response.read())
  described = {p["name"]: p for p in content["problems"]}
  assert list(described) == list(PROBLEM_NAMES)
  assert described["translate_ende_bible"]["input"] == "text"
  assert described["translate_ende_bible"]["command"] == "To-German"
  assert described["image_digits"]["input"] == "file" and "image/png" in described["image_digits"]["accept"]
  assert described["speech_espeak"]["describe"] == "a 16-bit PCM WAV file"
  assert content["max_upload_bytes"] == web.MAX_UPLOAD_BYTES


def test_decode_endpoint_answers_as_the_decoder(url, run):
  status, content = _post(url, json.dumps({"problem": "translate_ende_bible", "text": LINE}).encode())
  assert status == 200 and content["seconds"] >= 0
  assert content["output"] == serving.load_decoder(run, "translate_ende_bible").decode([LINE])[0]


@pytest.mark.parametrize("request_body, status, message", [
    (b"not json", 400, "The request is not JSON."),
    (b"[1, 2]", 400, "Expected a JSON object."),
    (json.dumps({"problem": "parse_trees", "text": "x"}).encode(), 404, "Unknown problem 'parse_trees'"),
    (json.dumps({"problem": "translate_ende_bible", "text": "  "}).encode(), 400, "Nothing to decode"),
    (json.dumps({"problem": "translate_ende_bible", "text": "x" * 10_000}).encode(), 413,
     "The text has 10,000 characters; the most is 2,000."),
    (json.dumps({"problem": "image_digits", "data": "%%%"}).encode(), 400, "not valid base64"),
    (json.dumps({"problem": "image_digits", "data": ""}).encode(), 400, "The file is empty"),
    (json.dumps({"problem": "image_digits", "data": "aGVsbG8="}).encode(), 400,
     "image_digits could not read this input: it expects an image file"),
    (json.dumps({"problem": "speech_espeak", "data": "aGVsbG8="}).encode(), 400, "a 16-bit PCM WAV file"),
])
def test_bad_requests_are_one_line_and_the_server_keeps_serving(url, request_body, status, message):
  got, content = _post(url, request_body)
  assert got == status and message in content["error"] and "\n" not in content["error"]
  with urllib.request.urlopen(url + "api/problems", timeout=60) as response:
    assert response.status == 200


def test_a_50_mb_upload_is_refused_before_it_is_read(url):
  host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
  connection = http.client.HTTPConnection(host, int(port), timeout=60)
  connection.putrequest("POST", "/api/decode")
  connection.putheader("Content-Length", str(50 * 2 ** 20 * 4 // 3))
  connection.endheaders()  # the body is never sent
  response = connection.getresponse()
  assert response.status == 413 and "the most mm-serve takes is 10 MB" in json.loads(response.read())["error"]
  connection.close()


# --- The page, in Debian's chromium. --------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
  assert chromium and driver, "Debian's chromium and chromium-driver are missing: run `make browser`."
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    options.add_argument(argument)
  session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
  yield session
  session.quit()


def _decode_on_the_page(browser, timeout=300):
  """Clicks Decode; returns (output, error, seconds line) once the page has an answer."""
  from selenium.webdriver.support.ui import WebDriverWait
  browser.find_element("id", "decode").click()
  # textContent, not WebDriver's .text: .text folds whitespace (a vertical tab reads as a space),
  # and an untrained model's decode may hold any character.
  text = lambda name: browser.execute_script(  # noqa: E731
      "return document.getElementById(arguments[0]).textContent;", name)
  WebDriverWait(browser, timeout).until(
      lambda _: (text("seconds") or text("error")) and browser.find_element("id", "decode").is_enabled())
  return text("output"), text("error"), text("seconds")


def _choose(browser, problem):
  from selenium.webdriver.support.ui import Select, WebDriverWait
  WebDriverWait(browser, 60).until(lambda b: b.find_elements("css selector", "#problem option"))
  Select(browser.find_element("id", "problem")).select_by_value(problem)


def test_the_page_serves_text_images_and_audio_and_survives_bad_input(browser, url, run, tmp_path):
  files = _client_files(tmp_path)
  browser.get(url)

  _choose(browser, "translate_ende_bible")
  browser.find_element("id", "text").send_keys(LINE)
  output, error, seconds = _decode_on_the_page(browser)
  assert not error and re.fullmatch(r"decoded in \d+\.\d{3} s", seconds)
  assert output == serving.load_decoder(run, "translate_ende_bible").decode([LINE])[0]
  browser.execute_script("document.getElementById('text').value = 'x'.repeat(10000);")
  assert "the most is 2,000" in _decode_on_the_page(browser)[1]

  _choose(browser, "image_digits")
  not_an_image, empty, huge = tmp_path / "notes.png", tmp_path / "empty.png", tmp_path / "huge.png"
  not_an_image.write_text("this is text, not an image")
  empty.write_bytes(b"")
  with open(huge, "wb") as f:
    f.truncate(50 * 2 ** 20)
  for path, message in [(not_an_image, "could not read this input"), (empty, "The file is empty"),
                        (huge, "The file is 50.0 MB; the most mm-serve takes is 10 MB.")]:
    browser.find_element("id", "file").send_keys(str(path))
    assert message in _decode_on_the_page(browser)[1], path
  labels = serving.load_decoder(run, "image_digits").decode(files["image"])
  browser.find_element("id", "file").send_keys(files["image"][0])  # after the bad ones: still serving
  output, error, seconds = _decode_on_the_page(browser)
  assert not error and output == labels[0] and seconds

  _choose(browser, "speech_espeak")
  assert browser.find_element("id", "file").get_attribute("accept") == "audio/wav,.wav"
  browser.find_element("id", "file").send_keys(files["audio"][1])  # 22.05 kHz stereo
  output, error, seconds = _decode_on_the_page(browser)
  assert not error and seconds
  assert output == serving.load_decoder(run, "speech_espeak").decode([files["audio"][1]])[0]
