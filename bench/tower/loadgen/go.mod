module knet.bench/loadgen

go 1.22
