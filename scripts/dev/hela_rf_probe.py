"""A development probe, not a CV row of the README's tables: how far an ilastik-style pixel
classifier (scikit-learn random forest on scikit-image's multiscale_basic_features, input
scale 0.5) gets on the HeLa nuclei, on the same 3 folds by frame as scripts/evaluate_real.sh.
    OMP_NUM_THREADS=1 python scripts/dev/hela_rf_probe.py   (about 5 min on the 2-core CPU)
Needs scikit-learn (not a dependency of the package)."""
import glob, os
import numpy as np
from skimage import feature, filters, io, morphology, transform
from sklearn.ensemble import RandomForestClassifier
from napari_pgdiffseg.core.training import kfold_split
D=os.path.join(os.environ.get('PGDIFFSEG_DATA','../shared/data'),'qpi-live-dead')
names=sorted(os.path.basename(f) for f in glob.glob(D+'/HeLa-labels/*.png'))
S=0.5
def feats(im):
    g=im.astype(np.float32); g=(g-np.percentile(g,1))/(np.percentile(g,99.8)-np.percentile(g,1))
    g=transform.rescale(g,S,anti_aliasing=True)
    return feature.multiscale_basic_features(g,intensity=True,edges=True,texture=True,sigma_min=1,sigma_max=32,num_sigma=7)
X={};Y={}
for n in names:
    X[n]=feats(io.imread(f'{D}/HeLa/{n}'))
    m=io.imread(f'{D}/HeLa-labels/{n}')>0
    Y[n]=transform.resize(m.astype(float),X[n].shape[:2],order=1)>0.5
print('features',X[names[0]].shape)
res=[]
for fold,(tr,te) in enumerate(kfold_split(len(names),3,0)):
    rng=np.random.default_rng(0)
    xs=[];ys=[]
    for i in tr:
        x=X[names[i]].reshape(-1,X[names[i]].shape[-1]); y=Y[names[i]].ravel()
        idx=rng.choice(len(y),20000,replace=False); xs.append(x[idx]); ys.append(y[idx])
    rf=RandomForestClassifier(100,max_depth=16,n_jobs=1,random_state=0).fit(np.concatenate(xs),np.concatenate(ys))
    for i in te:
        n=names[i]; p=rf.predict_proba(X[n].reshape(-1,X[n].shape[-1]))[:,1].reshape(X[n].shape[:2])
        p=filters.gaussian(p,2)
        m=io.imread(f'{D}/HeLa-labels/{n}')>0
        pr=transform.resize(p,m.shape,order=1)>0.5
        pr=morphology.remove_small_objects(pr,max_size=300)
        iou=(pr&m).sum()/(pr|m).sum(); res.append(iou); print(fold,n,'%.3f'%iou,flush=True)
print('mean fg IoU %.3f'%np.mean(res))
