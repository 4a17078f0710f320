// placeholder: this module is being written
namespace kvsfs_placeholder {}
