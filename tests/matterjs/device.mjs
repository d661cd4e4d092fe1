#!/usr/bin/env node
/**
 * matter.js 0.17.9 peer device for the jfds-device interop tests: an On/Off light.
 *
 *   endpoint 0: root (BasicInformation, AccessControl, GroupKeyManagement, ... as matter.js provides them)
 *   endpoint 1: OnOffLight (Identify, Groups, ScenesManagement, OnOff) + Binding server
 *
 * Run it only inside a network namespace created by the test (tests/e2e/matterjs.py does that):
 *   ip netns exec NS env MATTER_STORAGE_PATH=/tmp/x/storage node device.mjs
 *
 * Configuration (environment, all optional):
 *   DEV_ID              node id in the storage, also the node label               (default "light")
 *   DEV_PORT            operational UDP port                                      (default 5540)
 *   DEV_PASSCODE        setup passcode                                            (default 20202021)
 *   DEV_DISCRIMINATOR   long discriminator; use distinct *short* discriminators (top 4 bits) per namespace
 *                                                                                 (default 3840)
 *   DEV_VENDOR_ID       vendor id, decimal or 0x hex                              (default 0xFFF1)
 *   DEV_PRODUCT_ID      product id                                                (default 0x8000)
 *   DEV_VENDOR_NAME     BasicInformation.VendorName                               (default "matter.js test")
 *   DEV_ACL_ENTRIES     AccessControl.AccessControlEntriesPerFabric               (matter.js default 4)
 *   DEV_MAX_GROUPS      GroupKeyManagement.MaxGroupsPerFabric                     (matter.js default 22)
 *   DEV_MAX_GROUP_KEYS  GroupKeyManagement.MaxGroupKeysPerFabric, IPK included    (matter.js default 20)
 *   DEV_SOFTWARE_VERSION BasicInformation.SoftwareVersion (and "v<N>" as its string) (matter.js default 0)
 *   MATTER_STORAGE_PATH storage directory (default ./storage/device); one process per directory
 *   MATTER_LOG_LEVEL, MATTER_LOG_FORMAT=plain, MATTER_MDNS_NETWORKINTERFACE      (matter.js variables)
 *
 * stdout protocol (one line each; matter.js log lines are interleaved and start otherwise):
 *   READY {"id","manualCode","qr","port","discriminator","passcode","vendorId","productId","commissioned","startupMs"}
 *   EVENT <kind> <json>   kind: commissioned | decommissioned | acl | binding | groupKeyMap | groupTable | onOff
 *   EXIT <code>           after SIGTERM/SIGINT closed the node (matter.js handles the signals)
 * bigints are printed as bare JSON integers, byte strings as {"$bytes": "<hex>"}.
 */
import { DeviceTypeId, Environment, ServerNode, VendorId } from "@matter/main";
import { BindingServer } from "@matter/main/behaviors/binding";
import { OnOffLightDevice } from "@matter/main/devices/on-off-light";

const env = Environment.default;
if (!env.vars.get("storage.path")) env.vars.set("storage.path", "storage/device");

const int = (name, fallback) => {
    const raw = process.env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
    return value;
};

const id = process.env.DEV_ID || "light";
const port = int("DEV_PORT", 5540);
const passcode = int("DEV_PASSCODE", 20202021);
const discriminator = int("DEV_DISCRIMINATOR", 3840);
const vendorId = int("DEV_VENDOR_ID", 0xfff1);
const productId = int("DEV_PRODUCT_ID", 0x8000);
const aclEntries = int("DEV_ACL_ENTRIES", undefined);
const maxGroups = int("DEV_MAX_GROUPS", undefined);
const maxGroupKeys = int("DEV_MAX_GROUP_KEYS", undefined);
const softwareVersion = int("DEV_SOFTWARE_VERSION", undefined);
const t0 = Date.now();

/** JSON with bigints as bare integers and bytes as {"$bytes": hex}. */
function toJson(value) {
    const marker = "\u0000bigint:";
    const text = JSON.stringify(value, function (key, v) {
        if (typeof v === "bigint") return marker + v.toString();
        // this[key] is the value before toJSON(): a Buffer would already be {"type": "Buffer", "data": [...]}.
        const raw = this[key];
        if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString("hex") };
        return v;
    });
    return text === undefined ? "null" : text.replace(/"\\u0000bigint:(-?\d+)"/g, "$1");
}
const emit = (kind, value) => console.log(`EVENT ${kind} ${toJson(value ?? null)}`);

const groupKeyManagement = {};
if (maxGroups !== undefined) groupKeyManagement.maxGroupsPerFabric = maxGroups;
if (maxGroupKeys !== undefined) groupKeyManagement.maxGroupKeysPerFabric = maxGroupKeys;

const node = await ServerNode.create({
    id,
    network: { port },
    commissioning: { passcode, discriminator },
    productDescription: { name: `mjs ${id}`, deviceType: DeviceTypeId(OnOffLightDevice.deviceType) },
    basicInformation: {
        vendorName: process.env.DEV_VENDOR_NAME || "matter.js test",
        vendorId: VendorId(vendorId),
        productName: "mjs OnOff light",
        productLabel: "mjs light",
        productId,
        nodeLabel: id,
        serialNumber: `mjs-${id}`,
        uniqueId: `mjs-${id}-uid`,
        ...(softwareVersion !== undefined ? { softwareVersion, softwareVersionString: `v${softwareVersion}` } : {}),
    },
    ...(aclEntries !== undefined ? { accessControl: { accessControlEntriesPerFabric: aclEntries } } : {}),
    ...(Object.keys(groupKeyManagement).length ? { groupKeyManagement } : {}),
});

const light = await node.add(OnOffLightDevice.with(BindingServer), { id: "light", number: 1 });

// Fabric-visible configuration changes, for tests that assert on what a peer wrote. Chunked list writes also
// report their intermediate states (e.g. [] between two full lists).
node.events.accessControl.acl$Changed.on(value => emit("acl", value));
node.events.groupKeyManagement.groupKeyMap$Changed.on(value => emit("groupKeyMap", value));
node.events.groupKeyManagement.groupTable$Changed.on(value => emit("groupTable", value));
light.events.binding.binding$Changed.on(value => emit("binding", { endpoint: 1, value }));
light.events.onOff.onOff$Changed.on(value => emit("onOff", { endpoint: 1, value }));
node.lifecycle.commissioned.on(() => emit("commissioned", { ms: Date.now() - t0 }));
node.lifecycle.decommissioned.on(() => emit("decommissioned", {}));

node.lifecycle.online.on(() => {
    const { manualPairingCode, qrPairingCode } = node.state.commissioning.pairingCodes;
    console.log("READY " + toJson({
        id, manualCode: manualPairingCode, qr: qrPairingCode, port, discriminator, passcode, vendorId, productId,
        commissioned: node.state.commissioning.commissioned, startupMs: Date.now() - t0,
    }));
});

// matter.js installs SIGINT/SIGTERM handlers (runtime.signals): they close the node and run() returns.
await node.run();
console.log(`EXIT ${process.exitCode ?? 0}`);
