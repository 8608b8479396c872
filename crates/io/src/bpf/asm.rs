//! [`Asm`]: a tiny eBPF assembler, enough for the steering program and any like it.
//!
//! eBPF instructions are 8 bytes: opcode, destination and source register (4 bits each),
//! a signed 16-bit offset and a signed 32-bit immediate (include/uapi/linux/bpf.h,
//! Documentation/bpf/standardization/instruction-set.rst in the kernel). Only the opcodes
//! a program of ours uses are named here; each method emits one instruction (two for a
//! 64-bit immediate) and returns the assembler, so a program reads as a listing.

/// eBPF registers: r0 return value, r1–r5 arguments (clobbered by calls), r6–r9 kept
/// across calls, r10 the read-only frame pointer.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

// Opcode = operation | source | class.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_STX: u8 = 0x03;
const BPF_B: u8 = 0x10; // 8-bit access
pub(crate) const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00; // 32-bit access
const BPF_H: u8 = 0x08; // 16-bit access
const BPF_DW: u8 = 0x18; // 64-bit access
const BPF_IMM: u8 = 0x00; // ld: 64-bit immediate (two slots)
const BPF_MEM: u8 = 0x60; // ldx/stx: memory at reg + off
const BPF_K: u8 = 0x00; // operand: the immediate
const BPF_X: u8 = 0x08; // operand: the source register
const BPF_ADD: u8 = 0x00;
const BPF_AND: u8 = 0x50;
const BPF_LSH: u8 = 0x60;
const BPF_MOV: u8 = 0xb0;
const BPF_JA: u8 = 0x00;
const BPF_JEQ: u8 = 0x10;
const BPF_JGT: u8 = 0x20;
const BPF_JNE: u8 = 0x50;
pub(crate) const BPF_CALL: u8 = 0x80;
pub(crate) const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose immediate is a map's file descriptor.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// One eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst as u8,
            src: src as u8,
            off,
            imm,
        }
    }

    /// `struct bpf_insn` as the kernel reads it: the register nibbles are a C bitfield,
    /// whose order follows the byte order.
    fn encode(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            self.dst | self.src << 4
        } else {
            self.dst << 4 | self.src
        };
        let [o0, o1] = self.off.to_ne_bytes();
        let [i0, i1, i2, i3] = self.imm.to_ne_bytes();
        [self.code, regs, o0, o1, i0, i1, i2, i3]
    }
}

/// A tiny assembler: appends instructions, resolves jumps to labels (of the program's own
/// label type `L`) at the end.
pub(crate) struct Asm<L> {
    insns: Vec<Insn>,
    /// (index of a jump, its target).
    jumps: Vec<(usize, L)>,
    labels: Vec<(L, usize)>,
}

impl<L> Default for Asm<L> {
    fn default() -> Self {
        Asm {
            insns: Vec::new(),
            jumps: Vec::new(),
            labels: Vec::new(),
        }
    }
}

impl<L: Copy + Eq> Asm<L> {
    fn emit(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    /// `dst = src` (64-bit).
    pub(crate) fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0))
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub(crate) fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst += imm`.
    pub(crate) fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_ADD | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst += src` (a packet pointer plus a bounded offset, here).
    pub(crate) fn add(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_ADD | BPF_X, dst, src, 0, 0))
    }

    /// `dst <<= imm`.
    pub(crate) fn lsh_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_LSH | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst &= imm`.
    pub(crate) fn and_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.emit(Insn::new(BPF_ALU64 | BPF_AND | BPF_K, dst, Reg::R0, 0, imm))
    }

    /// `dst = *(u32 *)(src + off)`.
    pub(crate) fn load32(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0))
    }

    /// `dst = *(u16 *)(src + off)`.
    pub(crate) fn load16(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_H, dst, src, off, 0))
    }

    /// `dst = *(u8 *)(src + off)`.
    pub(crate) fn load8(&mut self, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.emit(Insn::new(BPF_LDX | BPF_MEM | BPF_B, dst, src, off, 0))
    }

    /// `*(u16 *)(dst + off) = src`.
    pub(crate) fn store16(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_H, dst, src, off, 0))
    }

    /// `*(u8 *)(dst + off) = src`.
    pub(crate) fn store8(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_B, dst, src, off, 0))
    }

    /// `*(u32 *)(dst + off) = src`.
    pub(crate) fn store32(&mut self, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.emit(Insn::new(BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0))
    }

    /// `dst = map` (the map's fd, which the kernel replaces by the map's address). A
    /// 64-bit immediate load takes two slots; the second holds the upper 32 bits (0).
    pub(crate) fn load_map(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        let mut first = Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, Reg::R0, 0, map_fd);
        first.src = BPF_PSEUDO_MAP_FD;
        self.emit(first);
        self.emit(Insn::new(0, Reg::R0, Reg::R0, 0, 0))
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: L) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.emit(Insn::new(code, dst, src, 0, imm))
    }

    /// `goto to`.
    pub(crate) fn ja(&mut self, to: L) -> &mut Self {
        self.jump(BPF_JMP | BPF_JA, Reg::R0, Reg::R0, 0, to)
    }

    /// `if dst == imm goto to`.
    pub(crate) fn jeq_imm(&mut self, dst: Reg, imm: i32, to: L) -> &mut Self {
        self.jump(BPF_JMP | BPF_JEQ | BPF_K, dst, Reg::R0, imm, to)
    }

    /// `if dst != imm goto to`.
    pub(crate) fn jne_imm(&mut self, dst: Reg, imm: i32, to: L) -> &mut Self {
        self.jump(BPF_JMP | BPF_JNE | BPF_K, dst, Reg::R0, imm, to)
    }

    /// `if dst > src goto to` (unsigned).
    pub(crate) fn jgt(&mut self, dst: Reg, src: Reg, to: L) -> &mut Self {
        self.jump(BPF_JMP | BPF_JGT | BPF_X, dst, src, 0, to)
    }

    /// `r0 = helper(r1, ..., r5)`; clobbers r1–r5.
    pub(crate) fn call(&mut self, helper: i32) -> &mut Self {
        self.emit(Insn::new(BPF_JMP | BPF_CALL, Reg::R0, Reg::R0, 0, helper))
    }

    /// `return r0`.
    pub(crate) fn exit(&mut self) -> &mut Self {
        self.emit(Insn::new(BPF_JMP | BPF_EXIT, Reg::R0, Reg::R0, 0, 0))
    }

    /// The next instruction is `label`.
    pub(crate) fn label(&mut self, label: L) -> &mut Self {
        self.labels.push((label, self.insns.len()));
        self
    }

    /// `r0 = map[key]` (a pointer to the value, or 0 when absent) for a map with `u32`
    /// keys, the key from register `key` stored on the stack at r10 - 4, where the helper
    /// reads it.
    pub(crate) fn lookup(&mut self, map_fd: i32, key: Reg) -> &mut Self {
        self.store32(Reg::R10, -4, key) // *(u32 *)(fp - 4) = key
            .lookup_stack_key(map_fd, -4)
    }

    /// `r0 = map[key]` for the key already on the stack at r10 + `at`.
    pub(crate) fn lookup_stack_key(&mut self, map_fd: i32, at: i32) -> &mut Self {
        self.load_map(Reg::R1, map_fd) // r1 = &map
            .mov(Reg::R2, Reg::R10) // r2 = fp
            .add_imm(Reg::R2, at) // r2 = the key's address
            .call(super::BPF_FUNC_MAP_LOOKUP_ELEM) // r0 = bpf_map_lookup_elem(r1, r2)
    }

    /// The encoded program. Jump offsets count from the instruction after the jump.
    pub(crate) fn finish(&self) -> Vec<[u8; 8]> {
        let mut insns = self.insns.clone();
        for &(at, to) in &self.jumps {
            let target = self
                .labels
                .iter()
                .find(|(label, _)| *label == to)
                .map(|&(_, target)| target)
                .expect("every jump target is placed");
            insns[at].off = (target as isize - at as isize - 1) as i16;
        }
        insns.into_iter().map(Insn::encode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{BPF_FUNC_REDIRECT_MAP, XDP_PASS};

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Label {
        Pass,
    }

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // Byte images from the kernel's own encodings (e.g. `bpftool prog dump xlated`).
        let mut asm = Asm::<Label>::default();
        asm.mov(Reg::R6, Reg::R1)
            .load32(Reg::R2, Reg::R6, 4)
            .add_imm(Reg::R2, -4)
            .load_map(Reg::R1, 7)
            .call(BPF_FUNC_REDIRECT_MAP)
            .exit();
        let code = asm.finish();
        if cfg!(target_endian = "little") {
            assert_eq!(code[0], [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
            assert_eq!(code[1], [0x61, 0x62, 4, 0, 0, 0, 0, 0]);
            assert_eq!(code[2], [0x07, 0x02, 0, 0, 0xfc, 0xff, 0xff, 0xff]);
            assert_eq!(code[3], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
            assert_eq!(code[4], [0; 8]);
            assert_eq!(code[5], [0x85, 0, 0, 0, 51, 0, 0, 0]);
            assert_eq!(code[6], [0x95, 0, 0, 0, 0, 0, 0, 0]);
        }
    }

    #[test]
    fn jumps_resolve_to_their_labels() {
        let mut asm = Asm::default();
        asm.jeq_imm(Reg::R0, 0, Label::Pass) // 0: +2 → 3
            .mov_imm(Reg::R0, 1) // 1
            .exit() // 2
            .label(Label::Pass)
            .mov_imm(Reg::R0, XDP_PASS) // 3
            .exit(); // 4
        let code = asm.finish();
        assert_eq!(i16::from_ne_bytes([code[0][2], code[0][3]]), 2);
    }
}
