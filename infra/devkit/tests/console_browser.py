"""The console of `make dev` in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium. Run by infra/devkit/tests/local_app.rs against a `make dev` it
started; exits non-zero, saying what was missing, when the console does not behave.

The scenario: a fault switch flipped on the chaos page kills every order-events runtime; an order
placed through the API shows its hops live on its timeline, the killed ones among them, until its
message is a dead letter (payment.authorized, or shipment.created when the cold start answered before
the fault found its runtime); the switch goes off, the dead letter is redriven from
the queues page, and the timeline shows the order through to its capture. The timeline is saved as a
screenshot for the README.
"""

import argparse
import json
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def api(base, method, path, token, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver, what, seconds, check):
    """Waits for `check`; an element replaced while it is read (a live part redrawn, or the page a
    form's answer navigates to) counts as not yet, and is found again at the next poll."""
    try:
        return WebDriverWait(
            driver, seconds, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
        ).until(lambda d: check(d))
    except TimeoutException:
        sys.exit(f"console: {what} did not happen within {seconds} s; the page said:\n{driver.find_element(By.TAG_NAME, 'main').text}")


def click_when_there(driver, what, css, seconds=60):
    """Clicks the element, waiting for it (a live page may replace it while it is being found)."""

    def click(d):
        found = d.find_elements(By.CSS_SELECTOR, css)
        if found:
            found[0].click()
        return bool(found)

    wait_for(driver, what, seconds, click)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--console", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--screenshot", required=True)
    args = parser.parse_args()

    driver = browser()
    try:
        # A fault switch, flipped from the chaos page: every order-events runtime killed as it starts.
        driver.get(args.console + "/chaos")
        form = driver.find_element(By.ID, "add-rule")
        Select(form.find_element(By.NAME, "service")).select_by_value("lambda")
        operation = form.find_element(By.NAME, "operation")
        operation.clear()
        operation.send_keys("order-events")
        Select(form.find_element(By.NAME, "fault")).select_by_value("kill-runtime")
        ms = form.find_element(By.NAME, "ms")
        ms.clear()
        ms.send_keys("0")
        form.find_element(By.TAG_NAME, "button").click()
        wait_for(driver, "the switch listed", 10, lambda d: "kill-runtime" in d.find_element(By.ID, "rules").text)

        # An order placed through the API; its timeline opened before anything else happened to it.
        status, order = api(
            args.api,
            "POST",
            "/orders",
            args.token,
            {"items": [{"productId": "p-3", "quantity": 1}], "paymentMethod": "tok_visa"},
        )
        assert status == 201, order
        order_id = order["orderId"]
        driver.get(f"{args.console}/orders/{order_id}")

        # Each hop appears while the page is watched (no reload): the request, the relay, payments,
        # then order-events failing under the fault.
        for function in ("create-order", "outbox-relay", "payment-events"):
            wait_for(
                driver,
                f"the {function} hop on the live timeline",
                30,
                lambda d, f=function: d.find_elements(By.CSS_SELECTOR, f'.hop[data-function="{f}"]'),
            )
        wait_for(
            driver,
            "a failed order-events hop (the fault) on the live timeline",
            30,
            lambda d: d.find_elements(
                By.CSS_SELECTOR, '.hop.failed[data-function="order-events"], .hop.error[data-function="order-events"]'
            ),
        )

        # The switch off, then the dead letter redriven from the queues page.
        driver.get(args.console + "/chaos")
        click_when_there(driver, "the switch-off button", 'form[action="/chaos/off"] button')
        wait_for(driver, "every switch off", 10, lambda d: "Every switch is off" in d.find_element(By.TAG_NAME, "main").text)
        driver.get(args.console + "/queues")
        click_when_there(
            driver,
            "the redrive button of OrderEventsDeadLetterQueue",
            'form[action="/queues/OrderEventsDeadLetterQueue/redrive"] button',
        )
        wait_for(
            driver,
            "the dead letter moved (the queues page without its redrive button)",
            30,
            lambda d: not d.find_elements(By.CSS_SELECTOR, 'form[action="/queues/OrderEventsDeadLetterQueue/redrive"]'),
        )

        # The order completes on its timeline, live.
        driver.get(f"{args.console}/orders/{order_id}")
        wait_for(
            driver,
            "the order through to its capture on the live timeline",
            60,
            lambda d: d.find_elements(By.CSS_SELECTOR, '.hop.ok[data-function="shipment-events"]')
            and "payment.captured" in d.find_element(By.TAG_NAME, "main").text
            # the provider's capture, as a request of its hop
            and "payments POST /v1/charges/{id}/capture" in d.find_element(By.TAG_NAME, "main").text,
        )
        status, order = api(args.api, "GET", f"/orders/{order_id}", args.token)
        assert order["status"] == "FULFILLED", order
        driver.save_screenshot(args.screenshot)
        print(f"console: order {order_id} followed, faulted, redriven and fulfilled; screenshot {args.screenshot}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
