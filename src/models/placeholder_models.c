// placeholder until the layer lands; removed with its first real file
