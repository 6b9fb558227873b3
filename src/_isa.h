/*
 * Run-time choice of an AVX2 copy of a plain C loop: the loop is compiled twice, for
 * the baseline ISA and, on x86 with GCC or clang, with FC_ISA_AVX2 (the target
 * attribute avx2, without FMA, so both copies give the same bits); after fc_isa_init(),
 * fc_isa_use_avx2 says whether this CPU can run the second. Used by _resize_inner.h and _norm_inner.h.
 */
#ifndef FASTCONV_ISA_H
#define FASTCONV_ISA_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FC_ISA_X86 1
#define FC_ISA_AVX2 __attribute__((target("avx2")))
#else
#define FC_ISA_X86 0
#define FC_ISA_AVX2
#endif

static int fc_isa_use_avx2 = 0;

static void fc_isa_init(void)
{
#if FC_ISA_X86
    __builtin_cpu_init();
    fc_isa_use_avx2 = __builtin_cpu_supports("avx2");
#endif
}

#endif
