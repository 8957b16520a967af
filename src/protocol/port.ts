/** The virtio-serial port the guest agent listens on: QEMU names it, the image's unit waits for it, the agent opens it. */
export const PORT_NAME = 'org.kvmtest.agent.0';
