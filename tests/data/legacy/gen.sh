set -e
UK=/work/main/.venv/bin/unlearnkit
export UNLEARNKIT_PROGRESS=0 UNLEARNKIT_CACHE=/tmp/legacy/cache OMP_NUM_THREADS=1
TINY="data.name=synthetic data.options.n_train=600 data.options.n_test=200 data.options.size=8 data.options.noise=90 model.options.channels=[4,8] model.options.hidden=16 train.epochs=2 train.batch_size=32"
$UK run $TINY --seeds 0,1 --methods ft,ga,rl,sisa --out out/run
$UK run $TINY --seeds 0,1 --methods ft,rl --sparsity 0.5 --out out/run-sparse
$UK run $TINY --scenario class --forget-class 2 --seeds 0 --methods ft,iu params.iu.retain_guard=0 --out out/run-class
$UK run $TINY --seeds 0 --methods iu --out out/run-class --scenario class --forget-class 2
ADV="$TINY data.val_fraction=0.1 reserve=100 budgets=[0.1] seeds=[0]"
$UK damage $ADV --strategies random,class,typical --methods ft,ga,sisa --out out/damage
$UK heal $ADV --methods ft,sisa heal.damage_dir=out/damage "heal.variants=[{name: rem, data: remaining, epochs: one}, {name: tw, data: twins, similarity: cosine, epochs: one}, {name: rnd, data: random, epochs: one, methods: [ft]}]" --out out/heal
$UK tune $TINY --seeds 0,1 --method ft lr_share=0.1,0.3 --out out/run
