"use strict";
const $ = (id) => document.getElementById(id);
const make = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props); node.append(...children);
  return node;
};
async function post(url, body) {
  const response = await fetch(url, { method: "POST", body: JSON.stringify(body),
                                      headers: { "Content-Type": "application/json" } });
  const result = await response.json();
  return { ok: response.ok, text: result.message || result.detail || response.statusText };
}
function say(node, result) { node.textContent = result.text; node.className = result.ok ? "" : "error"; }
function nameForm(onName) {
  const input = make("input", { name: "name", placeholder: "name", required: true });
  const button = make("button", { type: "submit", className: "name", textContent: "Name" });
  const form = make("form", {}, input, " ", button);
  form.addEventListener("submit", (event) => { event.preventDefault(); onName(input.value.trim()); });
  return form;
}
async function refresh() {
  const people = await (await fetch("people")).json();
  const album = await fetch("album");
  const groups = album.ok ? await album.json() : null;
  const faceOf = {};
  for (const g of groups ? groups.groups : []) if (g.name) faceOf[g.name] = g.faces[0];
  $("people").replaceChildren(...people.people.map((name) => {
    const open = make("button", { type: "button", className: "person", textContent: name });
    open.addEventListener("click", () => showPerson(name));
    return make("li", {},
      ...(name in faceOf ? [make("img", { src: `faces/${faceOf[name]}.png`, alt: "" })] : []),
      open);
  }));
  filterPeople();
  if (groups) { $("album").hidden = false; showGroups(groups); }
  showQueue((await (await fetch("unknown")).json()).faces);
}
function showGroups(album) {
  if (album.waiting) say($("album-status"), { ok: true, text: album.waiting });
  $("groups").replaceChildren(...album.groups.map((g) => {
    const pick = make("input", { type: "checkbox", className: "pick", value: g.id });
    const title = make("span", { className: "title",
      textContent: `${g.name || "group " + g.id}: ${g.size} face${g.size > 1 ? "s" : ""}` });
    const faces = make("div", { className: "faces" },
      ...g.faces.map((f) => make("img", { src: `faces/${f}.png`, alt: `face ${f}` })));
    const card = make("div", { className: g.name ? "group named" : "group" },
      make("label", {}, pick, " ", title), faces, nameForm(async (name) => {
        say($("album-status"), await post(`groups/${g.id}/name`, { name })); refresh();
      }));
    card.dataset.id = g.id;
    return card;
  }));
}
function filterPeople() {
  const wanted = $("search").value.trim().toLowerCase();
  for (const li of $("people").children) {
    li.hidden = !li.querySelector(".person").textContent.toLowerCase().includes(wanted);
  }
}
async function showPerson(name) {
  $("person").hidden = false;
  $("person-name").textContent = name;
  $("person-photos").replaceChildren();
  const response = await fetch(`people/${encodeURIComponent(name)}/photos`);
  const result = await response.json();
  if (!response.ok) { say($("person-status"), { ok: false, text: result.detail }); return; }
  const count = result.photos.length;
  say($("person-status"), { ok: true, text: `${count} photo${count === 1 ? "" : "s"} of ${name} in the album.` });
  $("person-photos").replaceChildren(...result.photos.map((p) => make("figure", { className: "photo" },
    make("img", { src: `photos/${p.faces[0]}.jpg`, alt: p.file, loading: "lazy" }),
    make("figcaption", { textContent: `${p.file} (${p.how})` }))));
  $("person").scrollIntoView();
}
$("search").addEventListener("input", filterPeople);
$("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const first = [...$("people").children].find((li) => !li.hidden);
  if (first) showPerson(first.querySelector(".person").textContent);
});
function showQueue(faces) {
  $("queue").hidden = faces.length === 0;
  $("unknown").replaceChildren(...faces.map((f) => {
    const status = make("span", { className: "status" });
    const card = make("div", { className: "queued" },
      make("img", { src: `unknown/${f.id}.png`, alt: `unknown face ${f.id}` }),
      make("span", { textContent: ` from ${f.file} (nearest: ${f.nearest}) ` }),
      nameForm(async (name) => {
        const result = await post(`unknown/${f.id}/name`, { name });
        if (result.ok) { say($("status"), result); refresh(); } else say(status, result);
      }), status);
    card.dataset.id = f.id;
    return card;
  }));
}
$("merge").addEventListener("click", async () => {
  const ticked = [...document.querySelectorAll("#groups .pick:checked")].map((c) => +c.value);
  if (ticked.length !== 2) {
    say($("album-status"), { ok: false, text: "Tick exactly two groups to merge." }); return;
  }
  say($("album-status"), await post("groups/merge", { into: ticked[0], other: ticked[1] }));
  refresh();
});
refresh();
$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { show("Choose a photo first.", true); return; }
  show("Looking for faces...", false);
  $("photo").replaceChildren(); $("faces").replaceChildren();
  const body = new FormData(); body.append("file", file);
  const response = await fetch("predict", { method: "POST", body });
  const result = await response.json();
  if (!response.ok) { show(result.detail || response.statusText, true); return; }
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.alt = result.file;
  $("photo").append(img);
  for (const face of result.faces) {
    const box = document.createElement("div");
    box.className = face.name === "unknown" ? "box unknown" : "box";
    box.style.left = (100 * face.x / result.width) + "%";
    box.style.top = (100 * face.y / result.height) + "%";
    box.style.width = (100 * face.w / result.width) + "%";
    box.style.height = (100 * face.h / result.height) + "%";
    const label = document.createElement("span");
    label.className = "name"; label.textContent = face.name;
    box.append(label); $("photo").append(box);
    const li = document.createElement("li");
    li.textContent = `${face.name} (confidence ${Math.round(100 * face.confidence)}%)`;
    $("faces").append(li);
  }
  const notes = [result.message, ...result.warnings].filter(Boolean);
  show(notes.length ? notes.join(" ") : `${result.faces.length} face(s) found.`, false);
  refresh();
});
function show(text, isError) { $("status").textContent = text; $("status").className = isError ? "error" : ""; }
