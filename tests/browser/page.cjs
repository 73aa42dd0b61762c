// Drives Debian's headless Chromium (playwright-core, no downloaded
// browser) through vigil's status page for tests/e2e/page.rs.
//
//   node page.cjs read-only URL SERVICES_CSV KILL_SERVICE HOSTILE_SERVICE [SCREENSHOT]
//   node page.cjs actions URL TOKEN SERVICE
//   node page.cjs replace URL TOKEN SERVICE SOCKET_ADDRESS
//
// Prints what it checked, one line each; exits 1 on the first failure.
"use strict";
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const SOON = 30000;

function check(cond, what) {
  if (!cond) throw new Error("FAILED: " + what);
  console.log("ok: " + what);
}

async function restarts(page, name) {
  return page.evaluate((n) => {
    for (const tr of document.querySelectorAll("#services tbody tr")) {
      if (tr.dataset.name === n) return Number(tr.querySelector(".restarts").textContent);
    }
    return null;
  }, name);
}

async function cellText(page, name, cls) {
  return page.evaluate(([n, c]) => {
    for (const tr of document.querySelectorAll("#services tbody tr")) {
      if (tr.dataset.name === n) return tr.querySelector("." + c).textContent;
    }
    return null;
  }, [name, cls]);
}

async function waitRestarts(page, name, count) {
  await page.waitForFunction(([n, want]) => {
    for (const tr of document.querySelectorAll("#services tbody tr")) {
      if (tr.dataset.name === n) return Number(tr.querySelector(".restarts").textContent) >= want;
    }
    return false;
  }, [name, count], { timeout: SOON, polling: 100 });
}

async function readOnly(page, url, services, victim, hostile, screenshot) {
  let dialogs = 0;
  page.on("dialog", (d) => { dialogs++; d.dismiss(); });
  await page.goto(url);
  for (const name of services) {
    await page.waitForFunction((n) => [...document.querySelectorAll("#services tbody tr")]
      .some((tr) => tr.dataset.name === n), name, { timeout: SOON, polling: 100 });
  }
  check(true, "every service is listed: " + services.join(", "));
  check(await page.locator("button").count() === 0, "no action buttons without a token");

  // The hostile check's reason and log lines, as text.
  await page.waitForFunction((n) => [...document.querySelectorAll("#services tbody tr")]
    .some((tr) => tr.dataset.name === n && tr.querySelector(".reason").textContent.includes("<script>")),
    hostile, { timeout: SOON, polling: 100 });
  const reason = await cellText(page, hostile, "reason");
  check(reason.includes("<script>window.pwned=1</script>"), "the <script> reason is shown as text: " + reason);
  check(reason.includes("<img src=x onerror=window.pwned=2>"), "the <img onerror> reason is shown as text");
  await page.evaluate((n) => [...document.querySelectorAll("#services tbody tr")]
    .find((tr) => tr.dataset.name === n).click(), hostile);
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("<img"),
    null, { timeout: SOON, polling: 100 });
  check(true, "the hostile log line is shown as text");
  const injected = await page.evaluate(() => ({
    pwned: window.pwned === undefined ? null : window.pwned,
    scripts: document.querySelectorAll("body script").length,
    imgs: document.querySelectorAll("img").length,
  }));
  check(injected.pwned === null && injected.imgs === 0 && injected.scripts === 0 && dialogs === 0,
    "no injected element and no script ran: " + JSON.stringify(injected));

  // A killed service's restart appears without a reload.
  const before = await restarts(page, victim);
  const pid = Number(await cellText(page, victim, "pid"));
  check(pid > 1, victim + " has a pid: " + pid);
  await page.evaluate(() => { window.sameDocument = true; });
  process.kill(pid, "SIGKILL");
  await waitRestarts(page, victim, before + 1);
  check(await page.evaluate(() => window.sameDocument === true), "the restart of " + victim + " shows without a reload");
  await page.waitForFunction((n) => document.getElementById("journal").textContent.includes("SIGKILL"),
    victim, { timeout: SOON, polling: 100 });
  check(true, "the exit is in the events");

  const refused = await page.evaluate(async (n) =>
    (await fetch("/api/services/" + n + "/restart", { method: "POST" })).status, victim);
  check(refused === 404, "actions are absent without a token: " + refused);
  if (screenshot) {
    await page.evaluate((n) => [...document.querySelectorAll("#services tbody tr")]
      .find((tr) => tr.dataset.name === n).click(), victim);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: screenshot, fullPage: true });
  }
}

// A POST with exactly these headers (node's http, which sends what it is
// given), answered with its status code.
function rawPost(base, path, headers) {
  const http = require("http");
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ method: "POST", host: u.hostname, port: u.port, path, headers },
      (res) => { res.resume(); resolve(res.statusCode); });
    req.on("error", reject);
    req.end();
  });
}

async function actions(page, url, token, victim) {
  page.on("dialog", (d) => d.accept());
  await page.goto(url + "#token=" + encodeURIComponent(token));
  await page.waitForFunction((n) => [...document.querySelectorAll("#services tbody tr")]
    .some((tr) => tr.dataset.name === n && tr.querySelector("button.do-restart")), victim,
  { timeout: SOON, polling: 100 });
  check(true, "action buttons are there with a token");
  check(!(await page.evaluate(() => location.href.includes("token"))), "the token left the address bar");
  const post = (headers) => page.evaluate(async ([n, h]) =>
    (await fetch("/api/services/" + n + "/restart", { method: "POST", headers: h })).status, [victim, headers]);
  check(await post({}) === 401, "refused without the header");
  check(await post({ Authorization: "Bearer wrong" + token }) === 401, "refused with a wrong token");
  const cross = await rawPost(url, "/api/services/" + victim + "/restart",
    { Authorization: "Bearer " + token, Origin: "http://evil.example" });
  check(cross === 403, "refused from another origin: " + cross);
  const site = await rawPost(url, "/api/services/" + victim + "/restart",
    { Authorization: "Bearer " + token, "Sec-Fetch-Site": "cross-site" });
  check(site === 403, "refused when the browser says cross-site: " + site);
  const before = await restarts(page, victim);
  await page.evaluate((n) => [...document.querySelectorAll("#services tbody tr")]
    .find((tr) => tr.dataset.name === n).querySelector("button.do-restart").click(), victim);
  await waitRestarts(page, victim, before + 1);
  check(true, "the restart button restarted " + victim);
}

// A service with a held socket: the row shows it (name, address, fd); its
// replace button, once confirmed, starts a replace that the row shows
// live with both pids, then the switch to the new pid.
async function replace(page, url, token, victim, address) {
  page.on("dialog", (d) => d.accept());
  await page.goto(url + "#token=" + encodeURIComponent(token));
  const reasonHas = (text) => page.waitForFunction(([n, t]) => [...document.querySelectorAll("#services tbody tr")]
    .some((tr) => tr.dataset.name === n && tr.querySelector(".reason").textContent.includes(t)),
  [victim, text], { timeout: SOON, polling: 100 });
  await reasonHas("sockets: web " + address + " fd 3");
  check(true, "the row shows its socket: web " + address + " fd 3");
  const old = Number(await cellText(page, victim, "pid"));
  check(old > 1, victim + " has a pid: " + old);
  await page.evaluate((n) => { window.sameDocument = true; [...document.querySelectorAll("#services tbody tr")]
    .find((tr) => tr.dataset.name === n).querySelector("button.do-replace").click(); }, victim);
  await reasonHas("replacing: pid " + old + " → new pid ");
  const during = await cellText(page, victim, "reason");
  const fresh = Number(during.split("→ new pid ")[1]);
  check(fresh > 1 && fresh !== old, "the row shows the replace with both pids: " + during);
  await page.waitForFunction(([n, want]) => [...document.querySelectorAll("#services tbody tr")]
    .some((tr) => tr.dataset.name === n && Number(tr.querySelector(".pid").textContent) === want
      && !tr.querySelector(".reason").textContent.includes("replacing:")),
  [victim, fresh], { timeout: SOON, polling: 100 });
  check(await page.evaluate(() => window.sameDocument === true), "the switch to pid " + fresh + " shows without a reload");
}

(async () => {
  const [mode, url, ...rest] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS,
    headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("pageerror", (e) => console.log("page error: " + e.message));
    if (mode === "read-only") {
      await readOnly(page, url, rest[0].split(","), rest[1], rest[2], rest[3]);
    } else if (mode === "replace") {
      await replace(page, url, rest[0], rest[1], rest[2]);
    } else {
      await actions(page, url, rest[0], rest[1]);
    }
    console.log("PASS");
  } catch (e) {
    console.log(String(e && e.stack || e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
