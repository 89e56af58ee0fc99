module knet.local/tools/metal-sdk

go 1.24

require github.com/equinix/equinix-sdk-go v0.50.0

require gopkg.in/validator.v2 v2.0.1 // indirect
