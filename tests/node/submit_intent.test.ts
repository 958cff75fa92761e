// A Node client of WhatLead on the TypeScript stubs generated from protos/ (buf.gen.yaml): registers a
// simulator instance, submits a text intent to it and follows the intent to SENT, against a running stack
// (`make run`). Where to find it, from the environment as the CLI reads it:
//   WHATLEAD_GATE_ADDR, WHATLEAD_REPUTATION_ADDR   host:port (default: make run's ports)
//   WHATLEAD_CREDENTIALS                            the credentials file make run writes (.data/credentials.json)
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { credentials, Metadata, ServiceError } from "@grpc/grpc-js";

import { ConnectionState, MessageType, Provider, Purpose, TargetKind } from "../../build/gen/ts/whatlead/common/v1/common";
import {
  GateServiceClient,
  GetIntentRequest,
  GetIntentResponse,
  IntentOrigin,
  IntentStatus,
  MessageIntent,
  SubmitIntentRequest,
  SubmitIntentResponse,
  intentStatusToJSON,
} from "../../build/gen/ts/whatlead/gate/v1/gate";
import {
  RegisterInstanceRequest,
  RegisterInstanceResponse,
  ReputationServiceClient,
} from "../../build/gen/ts/whatlead/reputation/v1/reputation";

const WAIT_MS = 60_000; // generous: events cross the broker between the services

/** protos/service_config.json, found upwards from here: the deadlines and retries every client loads. */
function serviceConfig(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, "protos", "service_config.json");
    if (existsSync(candidate)) return readFileSync(candidate, "utf8");
  }
  throw new Error("protos/service_config.json not found above " + __dirname);
}

function caller(): { organizationId: string; metadata: Metadata } {
  const file = process.env.WHATLEAD_CREDENTIALS ?? path.join(".data", "credentials.json");
  const saved = JSON.parse(readFileSync(file, "utf8")) as { api_key: string; organization_id: string };
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${saved.api_key}`);
  return { organizationId: saved.organization_id, metadata };
}

/** A unary call of a generated grpc-js client, as a promise. */
function unary<Res>(start: (done: (error: ServiceError | null, response: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => start((error, response) => (error ? reject(error) : resolve(response))));
}

async function eventually<T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = await attempt();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

test("a Node client registers an instance, submits an intent and follows it to SENT", async () => {
  const options = { "grpc.service_config": serviceConfig() };
  const gate = new GateServiceClient(process.env.WHATLEAD_GATE_ADDR ?? "127.0.0.1:50051", credentials.createInsecure(), options);
  const reputation = new ReputationServiceClient(
    process.env.WHATLEAD_REPUTATION_ADDR ?? "127.0.0.1:50053",
    credentials.createInsecure(),
    options,
  );
  const { organizationId, metadata } = caller();
  try {
    const request = RegisterInstanceRequest.fromPartial({
        organizationId,
        displayName: "node client test",
        provider: Provider.PROVIDER_SIMULATOR,
        providerInstanceRef: `node-${randomBytes(6).toString("hex")}`,
        phone: `+55119${randomInt(10_000_000, 100_000_000)}`,
        connectionState: ConnectionState.CONNECTION_STATE_CONNECTED,
        purposes: [Purpose.PURPOSE_DISPATCH],
    });
    const registered = await unary<RegisterInstanceResponse>((done) =>
      reputation.registerInstance(request, metadata, done),
    );
    const instanceId = registered.instance!.id;
    assert.ok(instanceId);

    // The Gate learns of the instance from reputation's events: until then the pinned instance is not a
    // candidate, and each try is a new intent (a new idempotency key).
    const approved = await eventually<MessageIntent>("an APPROVED intent", async () => {
      const submit = SubmitIntentRequest.fromPartial({
          organizationId,
          idempotencyKey: randomBytes(12).toString("hex"),
          target: { kind: TargetKind.TARGET_KIND_PHONE, value: "+5511988887777" },
          type: MessageType.MESSAGE_TYPE_TEXT,
          purpose: Purpose.PURPOSE_DISPATCH,
          origin: IntentOrigin.INTENT_ORIGIN_API,
          payload: { text: { text: "hello from Node" } },
          instanceId,
      });
      const submitted = await unary<SubmitIntentResponse>((done) => gate.submitIntent(submit, metadata, done));
      const intent = submitted.intent!;
      return intent.status === IntentStatus.INTENT_STATUS_APPROVED ? intent : undefined;
    });
    assert.equal(approved.decidedByInstanceId, instanceId);

    const sent = await eventually<MessageIntent>("the intent SENT", async () => {
      const get = GetIntentRequest.fromPartial({ organizationId, intentId: approved.id });
      const got = await unary<GetIntentResponse>((done) => gate.getIntent(get, metadata, done));
      const intent = got.intent!;
      assert.notEqual(intentStatusToJSON(intent.status), "INTENT_STATUS_FAILED");
      return intent.status === IntentStatus.INTENT_STATUS_SENT ? intent : undefined;
    });
    assert.equal(sent.id, approved.id);
  } finally {
    gate.close();
    reputation.close();
  }
});
