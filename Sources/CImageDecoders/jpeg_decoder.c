#include "image_decoders.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} error_manager;

static void on_error(j_common_ptr info) {
    error_manager *e = (error_manager *)info->err;
    (*info->err->format_message)(info, e->message);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr info) { (void)info; }  /* warnings: silent */

int distill_decode_jpeg(const unsigned char *data, unsigned long size, int channels, int *width, int *height,
                        unsigned char **pixels, char *message, int capacity) {
    struct jpeg_decompress_struct info;
    error_manager errors;
    unsigned char *volatile out = NULL;
    *pixels = NULL;
    info.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = on_error;
    errors.base.output_message = on_message;
    errors.message[0] = 0;
    if (setjmp(errors.jump)) {
        snprintf(message, (size_t)capacity, "%s", errors.message[0] ? errors.message : "corrupt JPEG data");
        jpeg_destroy_decompress(&info);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, size);
    jpeg_read_header(&info, TRUE);
    info.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    if (info.output_components != channels || info.output_width == 0 || info.output_height == 0 ||
        info.output_width > 65535 || info.output_height > 65535) {
        snprintf(message, (size_t)capacity, "unsupported JPEG layout (%u x %u, %d components)", info.output_width,
                 info.output_height, info.output_components);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    size_t stride = (size_t)info.output_width * (size_t)channels;
    out = malloc(stride * info.output_height);
    if (!out) {
        snprintf(message, (size_t)capacity, "out of memory");
        jpeg_destroy_decompress(&info);
        return -1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = out + (size_t)info.output_scanline * stride;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    *pixels = out;
    jpeg_destroy_decompress(&info);
    return 0;
}
