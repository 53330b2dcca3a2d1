"""The live page in a real browser: the stack, the job on the local mini-cluster, the API in
a child process, and Debian's headless Chromium driven by Selenium. A user is picked on the
page, events for them go into Kafka, and the page must show the job's new list without a
reload. The screenshot it leaves is docs/live-page.png (the README shows it).

The events are synthetic (reco-synth's model, four interest clusters); to make the picture
readable, each cluster's items carry MovieLens titles of one genre, in the catalog the job
reads (so the reasons name them) and in the titles the API is given.
"""

import csv
import json
import os
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from flink_jobs import contracts
from flink_jobs.codec import AvroCodec
from lab.api import start_api
from lab.jobs import start_job, wait_until_consuming
from lab.oracle import expected_versions
from lab.wait import wait_for
from reco_tools import movielens
from reco_tools.kafka_io import event_message, make_producer, produce, produce_catalog
from reco_tools.synth import Synth, SynthConfig
from reco_tools.topics import ensure_topics
from udfs.versioning import next_version

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "live-page.png"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
EVENTS = AvroCodec("reco.UserEvent")
GENRES = ("Animation", "Horror", "Romance", "Western")   # one per synthetic cluster, few overlaps


def titled_catalog(synth: Synth) -> list[dict]:
    """The synthetic catalog, each cluster's items named after MovieLens films of one genre."""
    movies = sorted(movielens.load_movies().values(), key=lambda m: m.item_id)
    titles = Counter(m.title for m in movies)   # a few titles name two films: left out
    pools = [iter([m.title for m in movies if titles[m.title] == 1 and genre in m.genres
                   and not (set(GENRES) - {genre}) & set(m.genres)]) for genre in GENRES]
    catalog = synth.catalog()
    for record in catalog:
        record["title"] = next(pools[int(synth.item_cluster[record["item_id"] - 1])])
    return catalog


def watched_user(store, warmup) -> int:
    """The most active user with a list of five items or more, for a rich page (the most active
    of all may have consumed most of the small catalog); else the one with the longest list."""
    activity = Counter(e["user_id"] for e in warmup)
    length = {u: len(json.loads(store.get(contracts.user_recommendations_key(u)))["items"]) for u in activity}
    return max(activity, key=lambda u: (length[u] >= 5, activity[u] if length[u] >= 5 else length[u]))


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: `make setup` installs Debian's chromium and chromium-driver")
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
                "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # the console, for failures
    # With the driver's path given, Selenium skips selenium-manager, which would download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def live(stack, tmp_path_factory):
    """The job caught up on a synthetic warm-up, and the API on a free port."""
    ensure_topics(stack.bootstrap, recreate=True)
    store = redis.Redis.from_url(stack.redis_url)
    store.flushdb()
    synth = Synth(SynthConfig(events=1_500, users=40, items=80, clusters=len(GENRES), seed=11))
    catalog = titled_catalog(synth)
    run_dir = tmp_path_factory.mktemp("live")
    titles = run_dir / "titles.csv"
    with open(titles, "w", newline="") as f:
        csv.writer(f).writerows([("item_id", "title"), *((r["item_id"], r["title"]) for r in catalog)])
    warmup = sorted(synth.events(), key=lambda e: e["event_time"])
    producer = make_producer(stack.bootstrap)
    produce_catalog(producer, catalog, progress=False)
    # Minute buckets so that the ~10 minutes of event time of the warm-up close some: item
    # lists, trending and "because you liked" reasons come from closed buckets.
    job = start_job(stack.bootstrap, stack.redis_url, uuid.uuid4().hex[:8], run_dir / "job",
                    "--parallelism", "2", "--checkpoint-interval-ms", "2000", "--top-n", "10",
                    "--bucket-ms", "60000", "--cooccurrence-window-ms", "3600000", "--pair-span-ms", "600000",
                    "--trending-window-ms", "600000")
    api = None
    try:
        # Live traffic, as a site sends it, rather than a backlog: the item side keeps up.
        wait_until_consuming(stack.bootstrap, job, 180)
        # A list draws its candidates from the item side's lists; a user ranked before any of
        # them reached the rankers gets an empty list. So the last third of the warm-up waits
        # until the item side has published (the rankers get its lists when Redis does).
        cut = 2 * len(warmup) // 3
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in warmup[:cut]),
                rate=1_000, progress=False)
        similar_keys = [contracts.item_similar_key(r["item_id"]) for r in catalog]
        wait_for(lambda: job.check_alive() or (store.exists(contracts.TRENDING_KEY) and store.exists(*similar_keys)),
                 240, "the item side's first trending and similar-items lists")
        produce(producer, contracts.USER_EVENTS_TOPIC, (event_message(EVENTS, e) for e in warmup[cut:]),
                rate=1_000, progress=False)
        finals = {u: v[-1] for u, v in expected_versions(warmup).items()}

        def caught_up():
            job.check_alive()
            docs = store.mget([contracts.user_recommendations_key(u) for u in finals])
            return all(d is not None and json.loads(d)["version"] == finals[u] for u, d in zip(finals, docs))
        wait_for(caught_up, 240, "the job to answer every warm-up event")
        api = start_api(stack.redis_url, run_dir / "api.log", titles=titles)
        yield api, producer, store, warmup, finals
    finally:
        if api is not None:
            api.stop()
        producer.close()
        job.stop()


def test_the_page_shows_a_users_new_list_without_a_reload(browser, live):   # browser first: fails fast
    api, producer, store, warmup, finals = live
    user = watched_user(store, warmup)
    assert json.loads(store.get(contracts.user_recommendations_key(user)))["items"], \
        f"no user has a list of their own with items (the watched user {user}'s is empty)"
    shown = json.loads(urllib.request.urlopen(f"{api.url}/v1/users/{user}/recommendations").read())
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    version = lambda: browser.find_element(By.ID, "user-panel").get_attribute("data-version")  # noqa: E731

    def wait_for_version(expected):
        try:
            wait.until(lambda d: version() == str(expected))
        except TimeoutException:
            state = browser.find_element(By.ID, "connection").get_attribute("data-state")
            shown_user = browser.find_element(By.ID, "user-id").text
            raise AssertionError(f"the page shows user {shown_user}'s version {version()} ({state}), not {expected}; "
                                 f"console: {browser.get_log('browser')}; API log: {api.log_path}") from None

    browser.get(f"{api.url}/")
    box = browser.find_element(By.ID, "user-input")
    box.clear()
    box.send_keys(str(user))
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    wait_for_version(shown["version"])
    assert browser.find_element(By.ID, "connection").get_attribute("data-state") == "live"
    rows = browser.find_elements(By.CSS_SELECTOR, "#user-items li")
    before = [r.get_attribute("data-item-id") for r in rows]
    assert before and all(r.find_element(By.CLASS_NAME, "title").text for r in rows)
    age = browser.find_element(By.ID, "list-age").text
    # the age ticks by itself (every second while the list is less than an hour old)
    try:
        WebDriverWait(browser, 5, poll_frequency=0.1).until(lambda d: d.find_element(By.ID, "list-age").text != age)
    except TimeoutException:
        state = browser.find_element(By.ID, "connection").get_attribute("data-state")
        raise AssertionError(f"the list's age stayed {age!r} for 5 s ({state}, version {version()}); "
                             f"console: {browser.get_log('browser')}; API log: {api.log_path}") from None
    browser.execute_script("window.notReloaded = true")

    # The user buys the list's top item and then views it: the job ranks twice, and a consumed
    # item never appears in a list, so the list's items must change.
    top = int(before[0])
    t = warmup[-1]["event_time"] + 1_000
    events = [{"event_id": f"page-{i}", "user_id": user, "item_id": top, "event_type": kind, "value": None,
               "event_time": t + i} for i, kind in enumerate(("PURCHASE", "VIEW"))]
    produce(producer, contracts.USER_EVENTS_TOPIC, [event_message(EVENTS, e) for e in events], progress=False)
    expected = next_version(next_version(finals[user], t), t + 1)
    wait_for_version(expected)

    assert browser.execute_script("return window.notReloaded === true"), "the page reloaded"
    after = [r.get_attribute("data-item-id") for r in browser.find_elements(By.CSS_SELECTOR, "#user-items li")]
    assert str(top) not in after and after != before
    assert browser.find_element(By.ID, "user-version").text == str(expected)
    reasons = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#user-items .reason")]
    assert any(r.startswith("because you liked ") for r in reasons), reasons
    # Side panels: trending, and the similar items of the new top item.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#trending-items li"))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#similar-items li")
               or d.find_element(By.ID, "similar-empty").is_displayed())
    assert browser.find_element(By.ID, "similar-title").text not in ("", "–")
    # The whole page in the picture: the window as tall as the page.
    chrome, page = browser.execute_script("return [window.outerHeight - window.innerHeight, "
                                          "document.documentElement.scrollHeight]")
    browser.set_window_size(1280, chrome + page)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
