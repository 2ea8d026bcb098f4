// The playground: streams a chat completion with a key of this session, kept in memory only.
"use strict";
(() => {
  let key = null;
  let history = [];
  const $ = (id) => document.getElementById(id);

  async function sessionKey(csrf) {
    if (key) return key;
    const reply = await fetch("/console/api/playground-key", {
      method: "POST",
      headers: { "x-csrf-token": csrf },
      credentials: "same-origin",
    });
    if (!reply.ok) throw new Error("could not get a key for this session (" + reply.status + ")");
    key = (await reply.json()).key;
    return key;
  }

  function bubble(role, text) {
    const item = document.createElement("li");
    item.className = role;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.appendChild(body);
    $("pg-transcript").appendChild(item);
    return item;
  }

  function showCost(answer, usage) {
    if (!usage || usage.cost_micro_credits === undefined) return;
    const line = document.createElement("span");
    line.className = "cost";
    line.textContent =
      "Cost $" + usage.cost + " · " + usage.prompt_tokens + " prompt + " +
      usage.completion_tokens + " completion tokens";
    answer.appendChild(line);
  }

  async function send(event) {
    event.preventDefault();
    const root = $("playground");
    const prompt = $("pg-prompt").value.trim();
    if (!prompt) return;
    const image = $("pg-image").value.trim();
    const content = image
      ? [{ type: "text", text: prompt }, { type: "image_url", image_url: { url: image } }]
      : prompt;
    history.push({ role: "user", content });
    bubble("user", prompt + (image ? "\n[image] " + image : ""));
    $("pg-prompt").value = "";
    const messages = [];
    const system = $("pg-system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    const answer = bubble("assistant", "");
    const text = answer.querySelector(".text");
    $("pg-send").disabled = true;
    $("pg-status").textContent = "Streaming…";
    const select = $("pg-model");
    const imageModel = select.options[select.selectedIndex].dataset.kind === "images";
    // An image model answers whole (its images as data URLs); a chat model streams.
    const body = imageModel
      ? { model: select.value, messages: history.slice(-1) }
      : {
          model: select.value,
          messages: messages.concat(history),
          temperature: Number($("pg-temperature").value),
          max_tokens: Number($("pg-max").value),
          stream: true,
          stream_options: { include_usage: true },
        };
    try {
      const reply = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer " + (await sessionKey(root.dataset.csrf)),
        },
        body: JSON.stringify(body),
      });
      if (!reply.ok) {
        const error = await reply.json().catch(() => ({}));
        throw new Error((error.error && error.error.message) || "HTTP " + reply.status);
      }
      if (!(reply.headers.get("content-type") || "").startsWith("text/event-stream")) {
        const whole = await reply.json();
        const message = (whole.choices && whole.choices[0] && whole.choices[0].message) || {};
        text.textContent = message.content || "";
        for (const image of message.images || []) {
          const url = image && image.image_url && image.image_url.url;
          if (typeof url === "string" && url.startsWith("data:image/")) {
            const img = document.createElement("img");
            img.src = url;
            img.alt = "Generated image";
            answer.appendChild(img);
          }
        }
        history.push({ role: "assistant", content: message.content || "" });
        showCost(answer, whole.usage);
        $("pg-status").textContent = "";
        return;
      }
      const reader = reply.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let full = "";
      let cost = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message || "stream error");
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && delta.content) {
              full += delta.content;
              text.textContent = full;
            }
            if (chunk.usage && chunk.usage.cost_micro_credits !== undefined) cost = chunk.usage;
          }
        }
      }
      history.push({ role: "assistant", content: full });
      showCost(answer, cost);
      $("pg-status").textContent = "";
    } catch (err) {
      history.pop();
      answer.classList.add("error");
      text.textContent = "Error: " + err.message;
      $("pg-status").textContent = "";
    } finally {
      $("pg-send").disabled = false;
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const form = $("pg-form");
    if (!form) return;
    form.addEventListener("submit", send);
    $("pg-clear").addEventListener("click", () => {
      history = [];
      $("pg-transcript").textContent = "";
    });
  });
})();
