// The try-it page: sends the form to /predict?explain=true and shows the answer.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TOP_CONTRIBUTIONS = 8;

function customerFromForm(form) {
  const customer = {};
  for (const element of form.querySelectorAll("[data-kind]")) {
    const raw = element.value;
    const isNumber = element.dataset.kind === "number" && raw.trim() !== "" && !Number.isNaN(Number(raw));
    // Anything that is not a clean number goes as typed, so the API names the field.
    customer[element.name] = isNumber ? Number(raw) : raw;
  }
  return customer;
}

function clearErrors(form) {
  for (const message of form.querySelectorAll(".field-error, .form-error")) {
    message.hidden = true;
    message.textContent = "";
  }
  for (const element of form.querySelectorAll("[aria-invalid]")) {
    element.removeAttribute("aria-invalid");
  }
}

function showFormError(text) {
  const message = document.getElementById("form-error");
  message.textContent = text;
  message.hidden = false;
}

function showProblems(problems) {
  let first = null;
  for (const problem of problems) {
    const message = document.getElementById(`error-${problem.field}`);
    const input = document.getElementById(`f-${problem.field}`);
    if (!message || !input) {
      showFormError(`${problem.field}: ${problem.message}`);
      continue;
    }
    message.textContent = problem.message;
    message.hidden = false;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
}

function drawChart(container, contributions) {
  const top = contributions.slice(0, TOP_CONTRIBUTIONS);
  const width = 640, rowHeight = 28, labelWidth = 260, half = (width - labelWidth) / 2;
  const largest = Math.max(...top.map((part) => Math.abs(part.contribution)), 1e-9);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${top.length * rowHeight + 10}`);
  svg.setAttribute("width", "100%");
  top.forEach((part, row) => {
    const y = row * rowHeight + 5;
    const length = (Math.abs(part.contribution) / largest) * (half - 50);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", labelWidth - 8);
    label.setAttribute("y", y + 17);
    label.setAttribute("text-anchor", "end");
    label.textContent = part.feature.replaceAll("_", " ");
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", part.contribution >= 0 ? labelWidth + half : labelWidth + half - length);
    bar.setAttribute("y", y + 4);
    bar.setAttribute("width", Math.max(length, 1));
    bar.setAttribute("height", rowHeight - 10);
    bar.setAttribute("class", part.contribution >= 0 ? "bar towards" : "bar away");
    const value = document.createElementNS(SVG, "text");
    value.setAttribute("x", part.contribution >= 0 ? labelWidth + half + length + 4 : labelWidth + half - length - 4);
    value.setAttribute("y", y + 17);
    value.setAttribute("text-anchor", part.contribution >= 0 ? "start" : "end");
    value.setAttribute("class", "value");
    value.textContent = part.contribution.toFixed(2);
    svg.append(label, bar, value);
  });
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("x1", labelWidth + half);
  axis.setAttribute("x2", labelWidth + half);
  axis.setAttribute("y1", 0);
  axis.setAttribute("y2", top.length * rowHeight + 10);
  axis.setAttribute("class", "axis");
  svg.append(axis);
  container.replaceChildren(svg);
}

function showResult(result, threshold) {
  const probability = document.getElementById("probability");
  probability.textContent = `${(result.churn_probability * 100).toFixed(1)}%`;
  probability.dataset.probability = String(result.churn_probability);
  // With an API key set the page is not told the threshold (it is the model's business).
  const [above, below] = threshold
    ? [`At or above the ${threshold} threshold: likely`, `Below the ${threshold} threshold: not likely`]
    : ["Likely", "Not likely"];
  document.getElementById("decision").textContent = result.churn
    ? `${above} to churn, send the promo email.`
    : `${below} to churn, no promo email.`;
  drawChart(document.getElementById("chart"), result.explanation.contributions);
  const section = document.getElementById("result");
  section.hidden = false;
}

async function submit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  const button = document.getElementById("submit");
  button.disabled = true;
  try {
    const response = await fetch("predict?explain=true", {
      method: "POST", headers, body: JSON.stringify(customerFromForm(form)),
    });
    const body = await response.json();
    if (response.ok) {
      showResult(body, form.dataset.threshold);
    } else if (response.status === 422) {
      document.getElementById("result").hidden = true;
      showProblems(body.problems || []);
    } else if (response.status === 401) {
      showFormError("This service needs an API key: enter it under Access.");
      document.getElementById("api-key").focus();
    } else {
      showFormError(body.message || `The service answered ${response.status}.`);
    }
  } catch (error) {
    showFormError(`Could not reach the service: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("customer-form").addEventListener("submit", submit);
});
