#!/usr/bin/env node
/**
 * matter.js 0.17.9 controller for the jfds-device interop tests, driven by JSON lines on stdin.
 *
 * Run it only inside a network namespace created by the test (tests/e2e/matterjs.py does that):
 *   ip netns exec NS env MATTER_STORAGE_PATH=/tmp/x/storage node controller.mjs
 *
 * Environment (optional): CTRL_ID (storage id, default "ctrl"), CTRL_NODE_ID (our operational node id, default
 * random), CTRL_FABRIC_ID (default 1), CTRL_VENDOR_ID (default 0xFFF1), CTRL_FABRIC_LABEL, plus the matter.js
 * variables MATTER_STORAGE_PATH, MATTER_LOG_LEVEL, MATTER_LOG_FORMAT, MATTER_MDNS_NETWORKINTERFACE.
 *
 * Protocol: stdout carries only protocol lines, each one JSON object; matter.js logs go to stderr.
 *   first line:   {"ready": {"nodeId", "fabricId", "fabricIndex", "vendorId", "startupMs"}}
 *   request:      {"id": <any>, "cmd": <name>, ...arguments}
 *   response:     {"id": <same>, "ok": true, "result": <value>, "ms": <duration>}
 *              or {"id": <same>, "ok": false, "error": {"type", "message", "status"?, "clusterStatus"?, "local"?}, "ms"}
 * Commands:
 *   commission {manualCode | qr | passcode+discriminator, ip?, port?, nodeId?, discoveryTimeout = 30 s} -> {"nodeId"}
 *       without ip: commissionable mDNS discovery; with ip (+port, default 5540): PASE straight to that address.
 *       CASE afterwards always uses operational mDNS discovery.
 *   read    {nodeId, endpoint, cluster, attribute, fabricFiltered = true}          -> value
 *   write   {nodeId, endpoint, cluster, attribute, value}                          -> null
 *   invoke  {nodeId, endpoint, cluster, command, request?, timedRequestTimeoutMs?} -> response or null
 *   openEcm {nodeId, windowSeconds = 180}                                         -> {"manualCode", "qr"}
 *   nodes   {}                                                                     -> [nodeId, ...]
 *   close   {}                                                                     -> null, then the process exits
 * cluster: model name ("AccessControl", "basicInformation") or numeric id; attribute / command: model name
 * ("acl", "VendorName", "toggle") or numeric id. Values use the matter.js shapes (camelCase struct fields).
 * JSON conventions both ways: 64-bit integers are bare JSON integers (parsed without loss), byte strings are
 * {"$bytes": "<hex>"}. IM failures carry the status code in error.status (e.g. 135 CONSTRAINT_ERROR), and
 * error.local = true when the matter.js client refused the value itself (Validation*Error) without sending it.
 */
import { Environment, Logger, Millis, Seconds } from "@matter/main";
import * as Clusters from "@matter/main/clusters";
import { NetworkProfiles } from "@matter/main/protocol";
import { GeneralCommissioning } from "@matter/main/clusters/general-commissioning";
import {
    EndpointNumber, FabricId, ManualPairingCodeCodec, NodeId, QrPairingCodeCodec, ValidationError, VendorId,
} from "@matter/main/types";
import { CommissioningController } from "@project-chip/matter.js";
import { ClusterClient } from "@project-chip/matter.js/cluster";

const t0 = Date.now();
// Keep stdout for the protocol: every matter.js log line goes to stderr.
for (const name in Logger.destinations) {
    Logger.destinations[name].write = text => process.stderr.write(text + "\n");
}

const env = Environment.default;
if (!env.vars.get("storage.path")) env.vars.set("storage.path", "storage/controller");
// We handle SIGTERM/SIGINT below: matter.js's own handlers would close the node but leave stdin keeping us alive.
env.vars.set("runtime.signals", false);

// ---- JSON with lossless 64-bit integers and byte strings ----------------------------------------------------

const BIG = "\u0000bigint:";

function toJson(value) {
    const text = JSON.stringify(value, function (key, v) {
        if (typeof v === "bigint") return BIG + v.toString();
        // this[key] is the value before toJSON(): a Buffer would already be {"type": "Buffer", "data": [...]}.
        const raw = this[key];
        if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString("hex") };
        return v;
    });
    return text === undefined ? "null" : text.replace(/"\\u0000bigint:(-?\d+)"/g, "$1");
}

function fromJson(text) {
    // Integers beyond 2^53 would lose precision in JSON.parse: quote them (outside strings) and revive as bigint.
    const quoted = text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, token => {
        if (token[0] === '"' || !/^-?\d{16,}$/.test(token)) return token;
        return Number.isSafeInteger(Number(token)) ? token : JSON.stringify(BIG + token);
    });
    return JSON.parse(quoted, (_key, v) => {
        if (typeof v === "string" && v.startsWith(BIG)) return BigInt(v.slice(BIG.length));
        if (v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.$bytes === "string"
            && Object.keys(v).length === 1) {
            return new Uint8Array(Buffer.from(v.$bytes, "hex"));
        }
        return v;
    });
}

const send = message => process.stdout.write(toJson(message) + "\n");

// ---- cluster / element lookup by model name or id -------------------------------------------------------------

const clustersByKey = new Map();
for (const ns of Object.values(Clusters)) {
    if (ns === null || typeof ns !== "object" || typeof ns.id !== "number" || ns.schema === undefined) continue;
    if (!clustersByKey.has(ns.id)) clustersByKey.set(ns.id, ns);
    clustersByKey.set(String(ns.name).toLowerCase(), ns);
}

function lookupCluster(key) {
    const ns = typeof key === "number" ? clustersByKey.get(key) : clustersByKey.get(String(key).toLowerCase());
    if (ns === undefined) throw new Error(`unknown cluster ${JSON.stringify(key)}`);
    return ns;
}

function lookupElement(table, key, kind, clusterName) {
    if (typeof key === "number") {
        if (table[key] !== undefined) return table[key];
    } else if (typeof key === "string") {
        const wanted = key.toLowerCase();
        for (const name of Object.keys(table)) {
            if (name.toLowerCase() === wanted) return table[name];
        }
    }
    throw new Error(`unknown ${kind} ${JSON.stringify(key)} in cluster ${clusterName}`);
}

// ---- controller -------------------------------------------------------------------------------------------------

const controller = new CommissioningController({
    environment: { environment: env, id: process.env.CTRL_ID || "ctrl" },
    autoConnect: false,
    adminFabricLabel: process.env.CTRL_FABRIC_LABEL || "jfds-test-matterjs",
    adminVendorId: VendorId(Number(process.env.CTRL_VENDOR_ID || 0xfff1)),
    adminFabricId: FabricId(BigInt(process.env.CTRL_FABRIC_ID || 1)),
    ...(process.env.CTRL_NODE_ID ? { rootNodeId: NodeId(BigInt(process.env.CTRL_NODE_ID)) } : {}),
    enableOtaProvider: false,
});
await controller.start();
// Peers whose network medium matter.js does not know yet (we skip the initial wildcard read that would tell it)
// get the "conservative" (Thread-like) profile: 100 ms between exchanges, +1.5 s on MRP backoff. Test peers sit on
// a veth pair or loopback, so treat them like Ethernet ("fast"): a read takes ~10 ms instead of ~100 ms.
controller.node.env.get(NetworkProfiles).defaults = {
    unknown: { exchanges: 200, delay: Millis(0), additionalMrpDelay: Millis(0) },
};

function nodeIdOf(args) {
    if (args.nodeId === undefined || args.nodeId === null) throw new Error("nodeId is required");
    return NodeId(BigInt(args.nodeId));
}

/** A ClusterClient over the node's interaction client: no connect() and no initial wildcard read needed. */
async function clusterClient(args) {
    const node = await controller.getNode(nodeIdOf(args));
    const interaction = node.getInteractionClient();
    const client = ClusterClient(lookupCluster(args.cluster), EndpointNumber(args.endpoint ?? 0), interaction);
    return { client, interaction };
}

/** An IM status the peer answered with (reads report it per attribute instead of throwing). */
class ImStatusError extends Error {
    constructor(message, code, clusterCode) {
        super(message);
        this.code = code;
        if (clusterCode !== undefined && clusterCode !== null) this.clusterCode = clusterCode;
    }
}

const commands = {
    async commission(args) {
        let passcode, identifierData;
        if (args.manualCode) {
            const code = ManualPairingCodeCodec.decode(String(args.manualCode));
            passcode = code.passcode;
            identifierData = { shortDiscriminator: code.shortDiscriminator };
        } else if (args.qr) {
            const [code] = QrPairingCodeCodec.decode(String(args.qr));
            passcode = code.passcode;
            identifierData = { longDiscriminator: code.discriminator };
        } else if (args.passcode !== undefined && args.discriminator !== undefined) {
            passcode = Number(args.passcode);
            identifierData = { longDiscriminator: Number(args.discriminator) };
        } else {
            throw new Error("commission needs manualCode, qr, or passcode + discriminator");
        }
        const nodeId = await controller.commissionNode({
            commissioning: {
                regulatoryLocation: GeneralCommissioning.RegulatoryLocationType.IndoorOutdoor,
                regulatoryCountryCode: "XX",
                ...(args.nodeId !== undefined && args.nodeId !== null ? { nodeId: NodeId(BigInt(args.nodeId)) } : {}),
            },
            discovery: {
                identifierData,
                discoveryCapabilities: { onIpNetwork: true },
                ...(args.ip ? { knownAddress: { type: "udp", ip: String(args.ip), port: Number(args.port ?? 5540) } } : {}),
                timeout: Seconds(Number(args.discoveryTimeout ?? 30)),
            },
            passcode,
        }, { connectNodeAfterCommissioning: false });
        return { nodeId };
    },

    async read(args) {
        const { client, interaction } = await clusterClient(args);
        const attribute = lookupElement(client.attributes, args.attribute, "attribute", client.name);
        // Not AttributeClient.get(): that answers undefined for an attribute status (e.g. UNSUPPORTED_ACCESS).
        const path = { endpointId: client.endpointId, clusterId: client.id, attributeId: attribute.id };
        const { attributeData, attributeStatus } = await interaction.getMultipleAttributesAndStatus({
            attributes: [path], isFabricFiltered: args.fabricFiltered ?? true,
        });
        if (attributeStatus?.length) {
            const { status, clusterStatus } = attributeStatus[0];
            throw new ImStatusError(`read ${client.name}.${attribute.name} failed with status ${status}`, status,
                clusterStatus);
        }
        if (attributeData.length !== 1) {
            throw new Error(`read ${client.name}.${attribute.name}: ${attributeData.length} reports, expected 1`);
        }
        return attributeData[0].value;
    },

    async write(args) {
        const { client } = await clusterClient(args);
        const attribute = lookupElement(client.attributes, args.attribute, "attribute", client.name);
        await attribute.set(args.value);
        return null;
    },

    async invoke(args) {
        const { client } = await clusterClient(args);
        const command = lookupElement(client.commands, args.command, "command", client.name);
        const options = args.timedRequestTimeoutMs
            ? { asTimedRequest: true, timedRequestTimeout: Millis(Number(args.timedRequestTimeoutMs)) } : {};
        // ClusterClient command functions: (options) for commands without fields, (request, options) otherwise;
        // a command whose request is not declared void in the model still takes an undefined request.
        const result = command.length === 0
            ? await command(options) : await command(args.request ?? undefined, options);
        return result ?? null;
    },

    async openEcm(args) {
        const node = await controller.getNode(nodeIdOf(args));
        if (!node.initialized) {
            node.connect({ autoSubscribe: false });
            await node.events.initialized;
        }
        const { manualPairingCode, qrPairingCode } = await node.openEnhancedCommissioningWindow(
            Number(args.windowSeconds ?? 180));
        return { manualCode: manualPairingCode, qr: qrPairingCode };
    },

    async nodes() {
        return controller.getCommissionedNodes();
    },
};

function describeError(error) {
    const info = { type: error?.constructor?.name ?? typeof error, message: String(error?.message ?? error) };
    if (typeof error?.code === "number") info.status = error.code;
    if (typeof error?.clusterCode === "number") info.clusterStatus = error.clusterCode;
    // The matter.js client checks values against the model before sending; such a failure never reached the peer.
    if (error instanceof ValidationError) info.local = true;
    return info;
}

// Requests run one at a time, in order; handle() never rejects, so one failure does not stall the queue.
let buffered = "";
let closing = false;
let queue = Promise.resolve();

async function close(id, started) {
    closing = true;
    let answer = { id, ok: true, result: null };
    try {
        await controller.close();
    } catch (error) {
        answer = { id, ok: false, error: describeError(error) };
    }
    send({ ...answer, ms: Date.now() - started });
    process.exit(answer.ok ? 0 : 1);
}

async function handle(line) {
    const started = Date.now();
    let id = null;
    let cmd;
    try {
        const request = fromJson(line);
        if (request === null || typeof request !== "object" || Array.isArray(request)) {
            throw new Error("a request is a JSON object {\"id\", \"cmd\", ...}");
        }
        let args;
        ({ id = null, cmd, ...args } = request);
        if (cmd === "close") return await close(id, started);
        const handler = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined;
        if (handler === undefined) throw new Error(`unknown command ${JSON.stringify(cmd)}`);
        const result = await handler(args);
        send({ id, ok: true, result: result ?? null, ms: Date.now() - started });
    } catch (error) {
        process.stderr.write(`command ${cmd} failed: ${error?.stack ?? error}\n`);
        send({ id, ok: false, error: describeError(error), ms: Date.now() - started });
    }
}

process.stdin.setEncoding("utf8");
process.stdin.on("data", chunk => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) queue = queue.then(() => handle(line));
    }
});
for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        if (closing) return;
        setTimeout(() => process.exit(1), 5000).unref();
        void close(null, Date.now());
    });
}
// stdin closed (the test process went away): close as if asked to.
process.stdin.on("end", () => {
    queue = queue.then(() => (closing ? undefined : close(null, Date.now())));
});

// Last: everything above (signal handlers included) is in place once the test sees this line.
const fabric = controller.fabric;
send({ ready: {
    nodeId: controller.nodeId, fabricId: fabric.fabricId, fabricIndex: fabric.fabricIndex,
    vendorId: fabric.rootVendorId, startupMs: Date.now() - t0,
} });
