// The facenet-mtl page: upload a photo to /v1/predict, draw each face's box and label over it,
// and show the JSON. Plain JS, no build step, nothing fetched from outside this server.
"use strict";

const $ = (id) => document.getElementById(id);

let shown = null;  // the last answer drawn: boxes are placed again when the photo's size changes

function px(value) {
  return value.toFixed(2) + "px";
}

// The model's heads, as GET /v1/model states them (from the model file's spec): each face's text
// is read by head kind, so a head this page never heard of is shown too.
let heads = [];

function headText(head, face) {
  const value = face[head.name];
  if (head.kind === "age") {
    const range = face.age_range ? ` (${face.age_range[0]}-${face.age_range[1]})` : "";
    return `${Math.max(0, Math.round(value))}y${range}`;
  }
  if (head.kind === "binary") return `${value.label.replaceAll("_", " ")} ${value.probability.toFixed(2)}`;
  const top = Object.entries(value.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 3);
  return top.map(([name, p]) => `${name.replaceAll("_", " ")} ${p.toFixed(2)}`).join(" · ");
}

function labelLines(face, known = heads) {
  const lines = new Map();
  known.filter((head) => head.name in face).forEach((head) => {
    const line = head.line || head.name;
    if (!lines.has(line)) lines.set(line, []);
    lines.get(line).push(headText(head, face));
  });
  return [...lines.values()].map((parts) => parts.join(" · "));
}

// Each box in the photo's own displayed pixels (its size on the page over the answer's width and
// height, from the photo's corner), never in percent of the stage, which may be wider than it.
function placeBoxes() {
  const photo = $("photo");
  if (!shown || !photo.clientWidth) return;
  const sx = photo.clientWidth / shown.width;
  const sy = photo.clientHeight / shown.height;
  $("stage").querySelectorAll(".face-box").forEach((box) => {
    const [x1, y1, x2, y2] = shown.faces[box.dataset.index].box;
    box.style.left = px(photo.offsetLeft + x1 * sx);
    box.style.top = px(photo.offsetTop + y1 * sy);
    box.style.width = px((x2 - x1) * sx);
    box.style.height = px((y2 - y1) * sy);
  });
}

function drawFaces(result) {
  const stage = $("stage");
  stage.querySelectorAll(".face-box").forEach((box) => box.remove());
  shown = result;
  result.faces.forEach((face, index) => {
    const [x1, y1, x2, y2] = face.box;
    const box = document.createElement("div");
    box.className = "face-box";
    box.dataset.index = index;
    const label = document.createElement("div");
    label.className = "face-label" + (y2 / result.height > 0.75 ? " above" : "");
    labelLines(face).forEach((line, i) => {
      if (i) label.appendChild(document.createElement("br"));
      label.appendChild(document.createTextNode(line));
    });
    box.appendChild(label);
    stage.appendChild(box);
  });
  placeBoxes();
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function upload(file) {
  if (!file) return;
  shown = null;
  $("photo").src = URL.createObjectURL(file);
  $("stage").hidden = false;
  $("stage").querySelectorAll(".face-box").forEach((box) => box.remove());
  setStatus(`Finding faces in ${file.name}…`);
  const form = new FormData();
  form.append("image", file, file.name);
  try {
    const response = await fetch("/v1/predict", { method: "POST", body: form });
    const result = await response.json();
    $("json").textContent = JSON.stringify(result, null, 2);
    $("details").hidden = false;
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${result.error}`, true);
      return;
    }
    await modelShown;
    drawFaces(result);
    const n = result.faces.length;
    setStatus(n ? `${n} face${n > 1 ? "s" : ""} found in ${result.milliseconds} ms` : `No face found (${result.note}).`);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(`The request failed: ${error}`, true);
  }
}

async function showModel() {
  try {
    const card = await (await fetch("/v1/model")).json();
    heads = card.heads || [];
    $("model").textContent = `Model: ${card.id}, ${card.input_size} px, heads: ${card.tasks.join(", ")}`;
    if (card.warning) {
      $("warning").textContent = card.warning;
      $("warning").hidden = false;
    }
  } catch (error) {
    $("model").textContent = "(the model card could not be read)";
  }
}

$("photo").addEventListener("load", placeBoxes);
window.addEventListener("resize", placeBoxes);
$("file").addEventListener("change", (event) => upload(event.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
  event.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  upload(event.dataTransfer.files[0]);
});
const modelShown = showModel();
if (typeof module !== "undefined") module.exports = { labelLines, headText };  // for the tests, in node
