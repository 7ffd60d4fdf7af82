"""The page at / in a real browser (Debian's headless Chromium driven by Selenium): upload a real
face photo and see a labelled box over the face. The screenshot is saved in the test's output
(its path is printed and recorded as the `screenshot` property); FACENET_MTL_SCREENSHOT=PATH also
copies it there (README's docs/serve-page.png is made so)."""
import os
import re
import shutil

import pytest

from facenet_mtl import weights
from tests.photos import face_photo, iou
from tests.serve.client import require_serve_extra

require_serve_extra()
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install -y "
                                       "chromium chromium-driver; .ci/run installs them)")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no driver download
    yield driver
    driver.quit()


def test_uploading_a_face_photo_shows_a_labelled_box_over_the_face(server, browser, tmp_path, record_property):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "face.jpg"
    pasted = face_photo(photo, shape=(480, 640), at=(300, 100), side=200)
    browser.get(server + "/")
    WebDriverWait(browser, 30).until(lambda d: "Model:" in d.find_element(By.ID, "model").text)
    if weights.release_info()["trained_on"] != "real":  # the placeholder warns on the page
        assert browser.find_element(By.ID, "warning").text.startswith("model facenet-mtl-")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".face-box .face-label")
                                      or "error" in d.find_element(By.ID, "status").get_attribute("class"))
    screenshot = tmp_path / "page.png"
    browser.save_screenshot(str(screenshot))
    record_property("screenshot", str(screenshot))
    print(f"screenshot: {screenshot}")
    if os.environ.get("FACENET_MTL_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["FACENET_MTL_SCREENSHOT"])
    boxes = browser.find_elements(By.CSS_SELECTOR, ".face-box")
    assert len(boxes) == 1, browser.find_element(By.ID, "status").text
    label = boxes[0].find_element(By.CSS_SELECTOR, ".face-label").text
    assert re.match(r"\d+y \(\d+-\d+\) · (female|male) [01]\.\d\d\n(\w+ [01]\.\d\d · ){2}\w+ [01]\.\d\d\n(no smile|smile) "
                    r"[01]\.\d\d$", label), label
    image = browser.find_element(By.ID, "photo").rect
    box = boxes[0].rect
    scale = 640 / image["width"]  # the page shows the photo scaled; the box must sit over the face
    shown = [(box["x"] - image["x"]) * scale, (box["y"] - image["y"]) * scale,
             (box["x"] - image["x"] + box["width"]) * scale, (box["y"] - image["y"] + box["height"]) * scale]
    assert iou(shown, pasted) > 0.5, (shown, pasted)
    assert browser.find_element(By.ID, "status").text.startswith("1 face found")
    assert '"confidence"' in browser.find_element(By.ID, "json").text


def _drawn_boxes_in_photo_pixels(browser, width):
    """Each drawn box, mapped from page pixels back to the photo's pixels (`width` wide)."""
    from selenium.webdriver.common.by import By

    image = browser.find_element(By.ID, "photo").rect
    scale = width / image["width"]
    return [[(b.rect["x"] - image["x"]) * scale, (b.rect["y"] - image["y"]) * scale,
             (b.rect["x"] - image["x"] + b.rect["width"]) * scale, (b.rect["y"] - image["y"] + b.rect["height"]) * scale]
            for b in browser.find_elements(By.CSS_SELECTOR, ".face-box")]


@pytest.mark.parametrize("photo_size, window", [
    ("genki", (1200, 900)),  # 350 x 262: narrower than the result column
    ((480, 640), (700, 900)),  # one column
    ((1200, 1600), (1200, 900)),  # shown scaled down, to the column's width or 75 % of the window's height
    ((300, 900), (1400, 700)),  # wide and low
])
def test_each_box_is_drawn_where_the_json_puts_it(server, browser, tmp_path, photo_size, window):
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.photos import GENKI, missing_data

    if photo_size == "genki":
        photo = GENKI / "file0003.jpg"
        if not photo.is_file():
            pytest.skip(missing_data(GENKI, "the GENKI-4K photos"))
    else:
        photo = tmp_path / "face.jpg"
        side = min(photo_size) // 2
        face_photo(photo, shape=photo_size, at=(photo_size[1] // 3, photo_size[0] // 4), side=side)
    browser.set_window_size(*window)
    browser.get(server + "/")
    WebDriverWait(browser, 30).until(lambda d: "Model:" in d.find_element(By.ID, "model").text)
    assert not browser.find_element(By.ID, "stage").is_displayed()  # no broken-image icon before an upload
    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".face-box")
                                      or "error" in d.find_element(By.ID, "status").get_attribute("class"))
    result = json.loads(browser.find_element(By.ID, "json").text)
    assert result["faces"], result
    for width in (window[0], window[0] // 2 + 200):  # and again after the window is resized
        browser.set_window_size(width, window[1])
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "photo").rect["width"] > 0)
        drawn = _drawn_boxes_in_photo_pixels(browser, result["width"])
        assert len(drawn) == len(result["faces"])
        for box, face in zip(drawn, result["faces"]):
            assert iou(box, face["box"]) > 0.9, (width, box, face["box"])
